export * from './backend';
export * from './model';
export * from './save';
export * from './weights';
export { batchNormFrozen, batchNormTraining } from './batchnorm';
export {
  installNativeKernels,
  loadNativeAddon,
  nativeKernelsInUse,
  setNativeKernels,
  NATIVE_ADDON,
} from './native-kernels';
