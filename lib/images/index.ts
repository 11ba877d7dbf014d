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
export type { Batch, DataLoaderOptions } from './loader';
export { DataLoader } from './loader';
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
