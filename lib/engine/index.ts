export type { BackendInfo, BackendName } from './backend';
export { fineTuneSupport, selectBackend, softwareAdapterWarning, wasmThreadsWanted } from './backend';
export { batchNormFrozen, batchNormTraining } from './batchnorm';
export {
  installNativeKernels,
  loadNativeAddon,
  nativeKernelsInUse,
  setNativeKernels,
  NATIVE_ADDON,
} from './native-kernels';
