/**
 * Learning-rate schedules with warm-up, as functions of the share of training done (0 at the first step,
 * 1 after the last): a pure function of progress, so that a resumed run steps at exactly the rates of an
 * uninterrupted one, whatever the batch size or the number of micro-batches.
 *
 * - `one-cycle`: fastai's fit_one_cycle (Smith, 2018): a cosine from lr/div up to lr over the first
 *   `pctStart` of training, then a cosine down to lr/divFinal.
 * - `cosine`: a linear warm-up from lr/div to lr over `pctStart`, then a cosine down to lr/divFinal.
 */

export type ScheduleKind = 'one-cycle' | 'cosine';

export interface LrSchedule {
  kind: ScheduleKind;
  /** Share of training spent warming up (fastai: 0.25 for fit_one_cycle, 0.3 in fine_tune). */
  pctStart: number;
  /** The first rate is lr / div (fastai: 25 for fit_one_cycle, 5 in fine_tune). */
  div: number;
  /** The last rate is lr / divFinal (fastai: 1e5). */
  divFinal: number;
}

export const SCHEDULE_KINDS: readonly ScheduleKind[] = ['one-cycle', 'cosine'];

/** fastai's SchedCos: from `start` at pos 0 to `end` at pos 1 along half a cosine. */
function cosineBetween(start: number, end: number, pos: number): number {
  return start + ((1 + Math.cos(Math.PI * (1 - pos))) * (end - start)) / 2;
}

/** The rate at `progress` (clamped to 0..1) of a schedule peaking at `lr`. */
export function scheduledLr(schedule: LrSchedule, lr: number, progress: number): number {
  const p = Math.min(1, Math.max(0, progress));
  const { pctStart, div, divFinal } = schedule;
  const low = lr / div;
  if (p < pctStart) {
    const pos = p / pctStart;
    return schedule.kind === 'one-cycle' ? cosineBetween(low, lr, pos) : low + (lr - low) * pos;
  }
  const pos = pctStart >= 1 ? 1 : (p - pctStart) / (1 - pctStart);
  return cosineBetween(lr, lr / divFinal, pos);
}

/** Refuses, with a one-line reason, a schedule that is not one. */
export function checkSchedule(schedule: LrSchedule): void {
  if (!SCHEDULE_KINDS.includes(schedule.kind)) throw new RangeError(`unknown schedule ${String(schedule.kind)}`);
  if (!(schedule.pctStart >= 0 && schedule.pctStart <= 1))
    throw new RangeError(`the warm-up share must be 0 to 1, got ${schedule.pctStart}`);
  if (!(schedule.div >= 1) || !(schedule.divFinal >= 1))
    throw new RangeError(`div and divFinal must be at least 1, got ${schedule.div} and ${schedule.divFinal}`);
}
