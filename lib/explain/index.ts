export * from './gradcam';
export * from './top-losses';
