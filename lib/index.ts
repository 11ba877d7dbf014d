export * from './data';
export * from './images';
export * from './model';
export * from './util';
