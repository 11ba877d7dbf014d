export * from './data';
export * from './util';
