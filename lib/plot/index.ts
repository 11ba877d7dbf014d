export * from './charts';
export * from './confusion';
export * from './grid';
export * from './plotly';
