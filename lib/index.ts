export * from './data';
export * from './images';
export * from './model';
export * from './train';
export * from './evaluate';
export * from './plot';
export * from './util';
export * from './explain';
