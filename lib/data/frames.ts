/**
 * DataFrame views (danfojs, the notebooks' pandas) of the plain rows that the data functions return.
 * Kept apart from the core so the CLI and tests do not load danfojs.
 */
import { DataFrame } from 'danfojs-node';

import { displayPath } from '../util/paths';
import type { ClassCount, IndexRow, SizeSummary } from './explore';
import type { SplitRow } from './split';

type Row = Record<string, string | number>;

function frame(rows: ReadonlyArray<Row>, columns: string[]): DataFrame {
  return new DataFrame(
    rows.map((r) => ({ ...r })),
    { columns },
  );
}

export function indexFrame(rows: readonly IndexRow[]): DataFrame {
  return frame(
    rows.map((r) => ({ ...r, filepath: displayPath(r.filepath) })),
    ['category', 'filepath', 'width', 'height'],
  );
}

export function classCountFrame(counts: readonly ClassCount[]): DataFrame {
  return frame(counts as unknown as Row[], ['category', 'count']);
}

export function sizeSummaryFrame(summary: readonly SizeSummary[]): DataFrame {
  return frame(summary as unknown as Row[], ['statistic', 'width', 'height']);
}

export function splitFrame(rows: readonly SplitRow[]): DataFrame {
  return frame(rows as unknown as Row[], ['path', 'class', 'subset']);
}
