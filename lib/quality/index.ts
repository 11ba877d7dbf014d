export * from './cached-accuracy';
export * from './confident-learning';
export * from './cross-val';
export * from './duplicates';
export * from './issues';
export * from './outputs';
export * from './phash';
export * from './photos';
