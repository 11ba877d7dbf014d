export type { EvaluateOptions, EvaluationResult, Misclassified } from './evaluate';
export { evaluateModel, metricsOf, misclassifiedOf, ttaViews } from './evaluate';
export type { ClassMetrics, Metrics } from './metrics';
export { computeMetrics, formatMetrics } from './metrics';
export type { Prediction } from './predict';
export { annotatePrediction, evalInput, evalTensor, predictImage } from './predict';
