export { classCountSpec, historySpec, lrFinderSpec, sizeDensitySpec, vegaLiteToPng, vegaLiteToSvg } from './charts';
export type { CurvePoint, RunCurve } from './compare';
export { compareRunsFigure, compareRunsSpec, valCurve } from './compare';
export { confusionMatrixPng, confusionMatrixSvg } from './confusion';
export type { GridItem } from './grid';
export { photoGrid } from './grid';
export type { PlotlyFigure, PlotlyRenderOptions, PlotlyTrace } from './plotly';
export { findChromium, historyFigure, isBlank, plotlyToPng } from './plotly';
