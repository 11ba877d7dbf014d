export type { ExportOptions, ExportResult } from './export';
export { DEFAULT_SHARD_BYTES, exportModel, parseQuantization } from './export';
export type { LayersArtifacts } from './layers-artifacts';
export { artifactsOf, OUTPUT_LAYER, webModelArtifacts } from './layers-artifacts';
export {
  BOAT_JSON,
  isExportFolder,
  isOwnExport,
  loadAnyModel,
  loadExportedLayersModel,
  loadExportedModel,
  readExportManifest,
} from './load';
export type { WeightQuantization } from './quantize';
export {
  affineRange,
  concatBytes,
  encodeFloat16,
  encodeUint8,
  float16Bits,
  quantizeWeights,
  shouldQuantize,
} from './quantize';
export type { RunningServer, ServeOptions } from './serve';
export { resolveInside, serveFolder } from './serve';
export { PAGE_FILES, pageFiles, WASM_DIR, WEB_BUILD_DIR } from './site-files';
