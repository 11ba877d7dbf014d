export * from './evaluate';
export * from './metrics';
export * from './predict';
