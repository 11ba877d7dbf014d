export * from './data';
export * from './images';
export * from './model';
export * from './train';
export * from './evaluate';
export * from './util';
