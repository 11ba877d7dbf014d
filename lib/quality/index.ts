export { cachedFeatureAccuracy } from './cached-accuracy';
export type { FindIssuesOptions, LabelIssueIndex } from './confident-learning';
export {
  confidentJoint,
  confidentThresholds,
  findLabelIssues,
  pruneCounts,
  roundPreservingRowTotals,
} from './confident-learning';
export type { CrossValOptions, CrossValResult } from './cross-val';
export { argmax, crossValidatedProbabilities, stratifiedFolds } from './cross-val';
export type { DuplicateMethod, IndexGroup, SimilarPair } from './duplicates';
export {
  EMBEDDING_THRESHOLD,
  embeddingPairs,
  groupPairs,
  mergeGroups,
  PHASH_MAX_DISTANCE,
  phashPairs,
} from './duplicates';
export type { DataIssuesOptions, DataIssuesReport, DataIssuesResult, LabelIssue, NearDuplicate } from './issues';
export { findDataIssues, formatDataIssues } from './issues';
export type { WrittenOutputs } from './outputs';
export {
  checkIssuesOut,
  duplicatesGrid,
  excludeRows,
  labelIssuesGrid,
  relabelRows,
  writeIssueOutputs,
} from './outputs';
export { hammingDistance, packHash, perceptualHashes, PHASH_BITS } from './phash';
export type { CollectOptions, Photo, PhotoFeatures } from './photos';
export { collectPhotoFeatures, isSplitRoot } from './photos';
