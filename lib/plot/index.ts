export * from './charts';
export * from './compare';
export * from './confusion';
export * from './grid';
export * from './plotly';
