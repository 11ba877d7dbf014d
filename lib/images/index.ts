export type { DecodeReply, DecodeRequest } from './decode-pool';
export { DecodePool, defaultDecodeWorkers } from './decode-pool';
export type { AugmentationFigureOptions } from './figure';
export { augmentationFigure } from './figure';
export type { LoadedSample } from './folder';
export { ImageFolder, loadImage } from './folder';
export {
  decodeJpeg,
  jpegAddonActive,
  jpegDecoderName,
  jpegExact,
  jpegGeometry,
  jpegShrinkFor,
  parsePlainJpeg,
  plainJpegSize,
  setJpegAddon,
  setJpegExact,
} from './jpeg';
export { MAX_IMAGE_PIXELS, pixelLimitProblem } from './limits';
export type { AffineMatrix } from './pillow';
export {
  affineNearest,
  autocontrast,
  blend,
  equalize,
  inverseAffineMatrix,
  luma,
  posterize,
  rotateNearest,
  smooth,
  solarize,
} from './pillow';
export type { Batch, DataLoaderOptions } from './loader';
export { DataLoader } from './loader';
export type { RandAugmentOptions } from './rand-augment';
export {
  applyOperation,
  drawOperations,
  operationMagnitude,
  RAND_AUGMENT_OPERATIONS,
  RandAugment,
} from './rand-augment';
export { cropRgb, decodeRgb, ImageDecodeError, openImage, pipelineOf, toRgb, withCrop, withResize } from './sample';
export type { ColorJitterOptions, Preprocessing, Transform, TransformSpec } from './transforms';
export {
  CAFFE_MEAN_BGR,
  CaffePreprocess,
  CenterCrop,
  centerCrop,
  ColorJitter,
  Compose,
  evalTransforms,
  hflip,
  IMAGENET_MEAN,
  IMAGENET_STD,
  isRandom,
  Normalize,
  preprocessingSteps,
  pyRound,
  RandomHorizontalFlip,
  RandomResizedCrop,
  randomResizedCropBox,
  RandomRotation,
  Resize,
  resizedCrop,
  resizedCropOnGrid,
  resizeFor,
  rotate,
  specOf,
  ToTensor,
  trainTransforms,
  transformFromSpec,
  ttaTransforms,
} from './transforms';
export type { Box, FloatImage, Geometric, ImageSource, PendingImage, RgbImage, Sample } from './types';
