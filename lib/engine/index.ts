export type { BackendInfo, BackendName } from './backend';
export { fineTuneSupport, selectBackend, softwareAdapterWarning, wasmThreadsWanted } from './backend';
export { addReluFused, setAddReluFusion } from './add-relu';
export { batchNormFrozen, batchNormReluFused, batchNormTraining, setBatchNormReluFusion } from './batchnorm';
export type { PackedTensors } from './batchnorm';
export { bf16StorageCounts, bf16StorageOn, setBf16Storage } from './bf16-storage';
export type { Precision, PrecisionChoice } from './precision';
export {
  activePrecision,
  DEFAULT_PRECISION,
  parsePrecision,
  PRECISION_CHOICES,
  precisionAsked,
  requestedPrecision,
  requestPrecision,
} from './precision';
export { setSummedGradients, summedGradientsOn } from './lean-backprop';
export { momentumOptimizer } from './momentum';
export type { GradientLayout } from './native-kernels';
export {
  FILTER_CACHE_BYTES,
  GRADIENT_INPUT_SLOTS,
  installNativeKernels,
  loadNativeAddon,
  nativeColumnSumsReused,
  nativeFilterCache,
  nativeGradientInputs,
  nativeBf16Support,
  nativeGradientLayout,
  nativeKernelsInUse,
  setNativeKernels,
  NATIVE_ADDON,
} from './native-kernels';
export { wasmHeapMb, wasmTrainingPassLimit, wasmTrainingPassMb } from './wasm-heap';
