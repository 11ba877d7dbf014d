/** A one-line progress bar per phase with images/s and ETA (stderr; redrawn in place on a terminal). */
import type { HistoryRow, Phase } from './train';

export interface ProgressSink {
  batch(info: { epoch: number; phase: Phase; done: number; total: number; seconds: number }): void;
  phase(row: HistoryRow): void;
}

function clock(seconds: number): string {
  if (!Number.isFinite(seconds)) return '--:--';
  const s = Math.max(0, Math.round(seconds));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}

export function progressLine(label: string, done: number, total: number, seconds: number, width = 24): string {
  const share = total > 0 ? Math.min(1, done / total) : 1;
  const filled = Math.round(share * width);
  const rate = seconds > 0 ? done / seconds : 0;
  const eta = rate > 0 ? (total - done) / rate : Infinity;
  return `${label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${total} img ${rate.toFixed(1)} img/s ETA ${clock(eta)}`;
}

/** One finished phase: epoch, loss, accuracy, learning rate and seconds. */
export function phaseLine(row: HistoryRow, epochs: number): string {
  return `epoch ${row.epoch + 1}/${epochs} ${row.phase.padEnd(5)} loss ${row.loss.toFixed(4)} acc ${row.acc.toFixed(4)} lr ${row.lr.toExponential(1)} ${row.seconds.toFixed(1)} s`;
}

/** Bars on stderr when it is a terminal; one line per finished phase on stdout either way. */
export function terminalProgress(
  epochs: number,
  stream: NodeJS.WriteStream = process.stderr,
  out: NodeJS.WriteStream = process.stdout,
): ProgressSink {
  const tty = stream.isTTY === true;
  let last = 0;
  return {
    batch({ epoch, phase, done, total, seconds }) {
      if (!tty) return;
      const now = Date.now();
      if (now - last < 100 && done < total) return;
      last = now;
      const label = epoch < 0 ? 'features   ' : `epoch ${epoch + 1}/${epochs} ${phase.padEnd(5)}`;
      stream.write(`\r${progressLine(label, done, total, seconds)}\x1b[K`);
    },
    phase(row) {
      const line = `${phaseLine(row, epochs)} (${row.imagesPerSecond.toFixed(1)} img/s)`;
      if (tty) stream.write('\r\x1b[K');
      out.write(`${line}\n`);
    },
  };
}

/**
 * The history as one line per epoch (train and val side by side), the best-val epoch marked: what a reader
 * needs after a run, where a line per phase would bury the story. A two-stage recipe's rows get a stage
 * column, and the marked epoch is the one the recipe keeps.
 */
export function historyTable(history: ReadonlyArray<HistoryRow & { stage?: number }>): string {
  // A two-stage recipe's rows carry their stage, and epochs count from 0 within each stage.
  const staged = history.some((r) => r.stage !== undefined);
  const key = (r: { stage?: number; epoch: number }): string => `${r.stage ?? 0}:${r.epoch}`;
  const keys = [...new Set(history.map(key))];
  const row = (k: string, phase: Phase): (HistoryRow & { stage?: number }) | undefined =>
    history.find((r) => key(r) === k && r.phase === phase);
  // The kept epoch: the first best within a stage; a later stage that equals an earlier one's best is kept.
  const vals = history.filter((r) => r.phase === 'val');
  const best =
    vals.length > 0
      ? key(vals.reduce((a, b) => (b.acc > a.acc || (b.stage !== a.stage && b.acc >= a.acc) ? b : a)))
      : '';
  const cell = (v: number | undefined, digits: number, width: number): string =>
    (v === undefined ? '' : v.toFixed(digits)).padStart(width);
  const lines = [`${staged ? 'stage  ' : ''}epoch  train loss  train acc  val loss  val acc      lr  seconds`];
  for (const k of keys) {
    const t = row(k, 'train');
    const v = row(k, 'val');
    const first = (t ?? v)!;
    lines.push(
      `${staged ? `${String(first.stage ?? '').padStart(5)}  ` : ''}${String(first.epoch + 1).padStart(5)}  ` +
        `${cell(t?.loss, 4, 10)}  ${cell(t?.acc, 4, 9)}  ${cell(v?.loss, 4, 8)}  ` +
        `${cell(v?.acc, 4, 7)}  ${first.lr.toExponential(1).padStart(6)}  ` +
        `${cell((t?.seconds ?? 0) + (v?.seconds ?? 0), 1, 7)}${k === best ? '  ← best val' : ''}`,
    );
  }
  return lines.join('\n');
}
