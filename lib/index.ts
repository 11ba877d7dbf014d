export * from './data';
export * from './images';
export * from './util';
