export type { BoatModelInfo, CreateModelOptions, HeadOptions, ParamCounts, TrainingMode } from './model';
export {
  balancedClassWeights,
  BoatModel,
  buildHead,
  createBoatModel,
  cutAtFeatures,
  LogSoftmax,
  nllLoss,
  resnetStage,
  StepDropout,
  TRAINING_MODES,
} from './model';
export type { ModelMetadata } from './save';
export { checkClassesMatch, loadBoatModel, MODEL_FORMAT, readModelMetadata, saveBoatModel } from './save';
export type { LoadedWeights, WeightsSource } from './weights';
export { defaultWeights, KerasResNet50Imagenet, setInputSize } from './weights';
