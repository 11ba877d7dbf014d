export type { ExperimentOptions, ExperimentResult } from './experiment';
export { runExperiment, uniqueSkips, withOutputLock } from './experiment';
export type { PassPlan } from './micro-batches';
export { fineTunePasses, splitBatch } from './micro-batches';
export type { ExtractOptions, FeatureSet } from './features';
export { extractFeatures, FeatureRun } from './features';
export type { ProgressSink } from './progress';
export { historyTable, phaseLine, progressLine, terminalProgress } from './progress';
export { checkLabelSmoothing } from './smoothing';
export { checkRandAugment, randAugmentLine } from './rand-augment';
export type { MixedBatch, MixingOptions, MixPlan } from './mixing';
export {
  cutmixBox,
  drawMix,
  majorityLabels,
  mixBatch,
  mixedNllLoss,
  mixForStep,
  resolveMixing,
  rollBatch,
  sampleBeta,
} from './mixing';
export { FeatureSource, LoaderSource, SizedSource } from './sources';
export type { BatchSource, HistoryRow, Phase, TrainBatch, TrainOptions, TrainResult } from './train';
export {
  checkpointSettings,
  checkResumeSettings,
  disposeOptimizer,
  forwardAny,
  resumeSettings,
  stepLr,
  trainModel,
} from './train';
export type { LrFinderOptions, LrFinderResult, LrPoint } from './lr-finder';
export { findLearningRate } from './lr-finder';
export type { SoupOptions, SoupRecipe, SoupResult, SoupStep } from './soup';
export { makeSoup } from './soup';
export type { Recipe, StageSummary, TwoStageOptions, TwoStageResult } from './two-stage';
export {
  hasTwoStageCheckpoint,
  RECIPES,
  runTwoStage,
  STAGE1_SCHEDULE,
  TWO_STAGE_DEFAULTS,
  twoStageCheckpoints,
} from './two-stage';
export type { LrSchedule, ScheduleKind } from './schedule';
export { checkSchedule, SCHEDULE_KINDS, scheduledLr } from './schedule';
export type { RateGroup } from './rates';
export { applyScaledGradients, groupMultipliers, RATE_GROUPS, stageRateMultipliers } from './rates';
export type {
  ClassRecall,
  RecipeStages,
  RepeatOptions,
  RepeatSummary,
  SeedRun,
  Spread,
  StageScores,
  WrongPhoto,
} from './repeat';
export {
  formatAlwaysWrong,
  formatRepeatTable,
  formatTestRecall,
  readRunMetrics,
  REPEATABLE_COMMANDS,
  repeatedData,
  repeatedOut,
  runRepeat,
  seedArgs,
  summarizeRuns,
  wrongInEverySeed,
} from './repeat';
