export * from './audit';
export * from './demo';
export * from './explore';
export * from './prepare';
export * from './probe';
export * from './scan';
export * from './split';
export * from './split-edits';
