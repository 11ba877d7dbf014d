export * from './model';
export * from './save';
export * from './weights';
