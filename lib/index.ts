// The library is its folders: each folder's index.ts lists its public API by name, so this file only names
// the folders (the one place lint allows `export *`, as a list of explicit lists cannot drift from them).
export * from './data';
export * from './images';
export * from './engine';
export * from './model';
export * from './train';
export * from './evaluate';
export * from './plot';
export * from './util';
export * from './explain';
export * from './quality';
