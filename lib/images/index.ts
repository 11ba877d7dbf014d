export * from './decode-pool';
export * from './figure';
export * from './folder';
export * from './jpeg';
export * from './limits';
export * from './loader';
export * from './sample';
export * from './transforms';
