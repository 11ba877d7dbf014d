export * from './experiment';
export * from './features';
export * from './progress';
export * from './sources';
export * from './train';
export * from './lr-finder';
export * from './soup';
