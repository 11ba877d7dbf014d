/** Label smoothing as a training setting: its valid range, and the line a run logs when it is on. */
import { UserError } from '../util';

/** Refuses a label smoothing outside [0, 1): at 1 the target is uniform and there is nothing left to learn. */
export function checkLabelSmoothing(x: number): void {
  if (!(typeof x === 'number' && x >= 0 && x < 1))
    throw new UserError(`label smoothing must be a number from 0 up to (not including) 1, got ${String(x)}`);
}

/** What the target becomes for `classes` classes, so that a log says what was trained on. */
export function labelSmoothingLine(x: number, classes: number): string {
  const other = x / classes;
  return `label smoothing ${x}: training targets ${+(1 - x + other).toFixed(4)} for the true class, ${+other.toFixed(4)} for each other (PyTorch's CrossEntropyLoss(label_smoothing=${x})); val loss stays the plain NLL`;
}
