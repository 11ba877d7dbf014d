export { defaultConcurrency, mapLimit } from './concurrency';
export { errorLine, escapeXml, UserError } from './errors';
export {
  claimOutputDirectory,
  isOwnedDirectory,
  linkOrCopy,
  OWNED_MARKER,
  parseCsv,
  processAlive,
  readFileSha256Checked,
  readOwnedMarker,
  recoverInterruptedSave,
  replaceOwnedDirectory,
  requireDirectory,
  requireWritableDirectory,
  sha256File,
  sha256Hex,
  toCsv,
  writeFileAtomic,
  writeJsonAtomic,
} from './files';
export { distinctOutputNames } from './output-names';
export { Random } from './random';
export { minutesAndSeconds, now, peakRssMb, secondsSince } from './time';
export type { HeldLock, LockInfo } from './lock';
export { acquireLock } from './lock';
export { displayPath, showPathsRelativeUnder } from './paths';
