/**
 * Several training runs on one chart: validation accuracy against minutes of training, so a recipe that
 * reaches more in less time shows as a curve that rises sooner and higher (epochs differ too much in cost
 * between a head on cached features and a whole-network epoch to share an epoch axis).
 */
import type { TopLevelSpec } from 'vega-lite';

import type { HistoryRow } from '../train/train';
import type { PlotlyFigure, PlotlyTrace } from './plotly';

export interface RunCurve {
  name: string;
  history: readonly HistoryRow[];
  /** Time spent before the first epoch (computing cached features), in seconds; the curve starts there. */
  startSeconds?: number;
}

export interface CurvePoint {
  minutes: number;
  acc: number;
}

/** Validation accuracy at the end of each val phase, against the training time so far (train and val phases). */
export function valCurve(run: RunCurve): CurvePoint[] {
  let seconds = run.startSeconds ?? 0;
  const points: CurvePoint[] = [];
  for (const row of run.history) {
    seconds += row.seconds;
    if (row.phase === 'val') points.push({ minutes: seconds / 60, acc: row.acc });
  }
  return points;
}

const COLOURS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd'];

export function compareRunsFigure(
  runs: readonly RunCurve[],
  title = 'Validation accuracy over training time',
): PlotlyFigure {
  const data: PlotlyTrace[] = runs.map((run, i) => {
    const points = valCurve(run);
    return {
      type: 'scatter',
      mode: 'lines+markers',
      name: run.name,
      x: points.map((p) => p.minutes),
      y: points.map((p) => p.acc),
      line: { color: COLOURS[i % COLOURS.length] },
      marker: { size: 6 },
    };
  });
  return {
    data,
    layout: {
      title: { text: title },
      xaxis: { title: { text: 'minutes of training' }, rangemode: 'tozero' },
      yaxis: { title: { text: 'val accuracy' } },
      legend: { x: 1, xanchor: 'right', y: 0, yanchor: 'bottom' },
      margin: { l: 70, r: 30, t: 60, b: 60 },
    },
  };
}

/** The same chart in Vega-Lite, for machines without Chromium. */
export function compareRunsSpec(
  runs: readonly RunCurve[],
  title = 'Validation accuracy over training time',
): TopLevelSpec {
  return {
    config: { font: 'DejaVu Sans' },
    title,
    width: 420,
    height: 240,
    data: { values: runs.flatMap((run) => valCurve(run).map((p) => ({ run: run.name, ...p }))) },
    mark: { type: 'line', point: true },
    encoding: {
      x: { field: 'minutes', type: 'quantitative', title: 'minutes of training' },
      y: { field: 'acc', type: 'quantitative', title: 'val accuracy', scale: { zero: false } },
      color: { field: 'run', type: 'nominal', title: null },
    },
  };
}
