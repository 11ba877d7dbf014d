export type { GradCam } from './gradcam';
export { gradCam, gradCamPng, gradCamTensor, heatmapPeak } from './gradcam';
export type { ConfusedPair, TopLoss } from './top-losses';
export { formatConfused, mostConfused, topLosses, topLossesLines, topLossesPng } from './top-losses';
