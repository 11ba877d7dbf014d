export * from './export';
export * from './layers-artifacts';
export * from './load';
export * from './quantize';
export * from './serve';
export * from './site-files';
