export type { AuditOptions, AuditReport, DuplicateGroup, DuplicateMember } from './audit';
export { auditDataset, formatAudit } from './audit';
export type { DatasetReady, DemoClass, DemoOptions, DemoResult } from './demo';
export { DEMO_CLASSES, drawScene, ensureDataset, makeDemoDataset } from './demo';
export type { ClassCount, FileIndex, IndexRow, SizeSummary } from './explore';
export { buildFileIndex, classCounts, folderTree, indexCsv, samplePerClass, sizeSummary } from './explore';
export type { PreparedClass, PrepareOptions, PrepareReport } from './prepare';
export { normaliseClassName, prepareDataset } from './prepare';
export type { ImageHeader } from './probe';
export { extensionMismatch, findDecodeProblem, readImageHeader } from './probe';
export type { LabelledFile, ScannedFolder, Skipped } from './scan';
export {
  compareStrings,
  hasImageExtension,
  IMAGE_EXTENSIONS,
  scanImageFolder,
  scanNonEmptyImageFolder,
  skippedLines,
  sortedEntries,
} from './scan';
export type { SplitOptions, SplitReport, SplitRow, Subset } from './split';
export { assignSubsets, EXCLUDED, largestClasses, readSplitCsv, splitDataset, SUBSETS, subsetSizes } from './split';
export type { SplitEditRow } from './split-edits';
export { readExcludeFile, readRelabelFile } from './split-edits';
