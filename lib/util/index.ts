export * from './concurrency';
export * from './errors';
export * from './files';
export * from './random';
export * from './time';
export * from './lock';
