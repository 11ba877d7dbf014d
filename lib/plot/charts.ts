/**
 * The tutorial's charts as Vega-Lite specs, rendered headless (vega View.toSVG, then sharp/librsvg to
 * PNG). PNG shows in JupyterLab, classic Notebook (untrusted HTML/SVG does not), nbconvert HTML, and
 * as files for CLI users.
 */
import sharp from 'sharp';
import * as vega from 'vega';
import * as vegaLite from 'vega-lite';
import type { TopLevelSpec } from 'vega-lite';

import type { ClassCount, IndexRow } from '../data/explore';
import type { LrFinderResult } from '../train/lr-finder';
import type { HistoryRow } from '../train/train';

/** Vega-Lite spec → SVG string. */
export async function vegaLiteToSvg(spec: TopLevelSpec): Promise<string> {
  const view = new vega.View(vega.parse(vegaLite.compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** Vega-Lite spec → PNG (at `scale`× for sharp text). */
export async function vegaLiteToPng(spec: TopLevelSpec, scale = 2): Promise<Buffer> {
  return sharp(Buffer.from(await vegaLiteToSvg(spec)), { density: 72 * scale })
    .flatten({ background: '#ffffff' })
    .png()
    .toBuffer();
}

const FONT = { config: { font: 'DejaVu Sans' } };

/** Images per class, largest first (the tutorial's bar chart). */
export function classCountSpec(counts: readonly ClassCount[], title = 'Images per class'): TopLevelSpec {
  return {
    ...FONT,
    title,
    width: 420,
    height: 240,
    data: { values: counts.map((c) => ({ ...c })) },
    mark: { type: 'bar', color: '#4c78a8' },
    encoding: {
      x: { field: 'category', type: 'nominal', sort: '-y', title: null, axis: { labelAngle: -35 } },
      y: { field: 'count', type: 'quantitative', title: 'images' },
    },
  };
}

/** Density curves of image widths and heights (the tutorial's KDE plot). */
export function sizeDensitySpec(rows: readonly IndexRow[], title = 'Image width and height'): TopLevelSpec {
  const values = rows.flatMap((r) => [
    { dimension: 'width', pixels: r.width },
    { dimension: 'height', pixels: r.height },
  ]);
  return {
    ...FONT,
    title,
    width: 420,
    height: 240,
    data: { values },
    transform: [
      {
        density: 'pixels',
        groupby: ['dimension'],
        bandwidth: 40,
        extent: [0, Math.max(...rows.map((r) => Math.max(r.width, r.height))) + 100],
      },
    ],
    mark: 'line',
    encoding: {
      x: { field: 'value', type: 'quantitative', title: 'pixels' },
      y: { field: 'density', type: 'quantitative', title: 'density' },
      color: { field: 'dimension', type: 'nominal', title: null },
    },
  };
}

/** Loss or accuracy per epoch, train vs val (the tutorial's curves). */
export function historySpec(history: readonly HistoryRow[], metric: 'loss' | 'acc', title?: string): TopLevelSpec {
  return {
    ...FONT,
    title: title ?? (metric === 'loss' ? 'Loss' : 'Accuracy'),
    width: 360,
    height: 220,
    data: { values: history.map((r) => ({ epoch: r.epoch + 1, phase: r.phase, value: r[metric] })) },
    mark: { type: 'line', point: true },
    encoding: {
      x: { field: 'epoch', type: 'quantitative', title: 'epoch', axis: { tickMinStep: 1 } },
      y: {
        field: 'value',
        type: 'quantitative',
        title: metric === 'loss' ? 'NLL loss' : 'accuracy',
        scale: { zero: false },
      },
      color: { field: 'phase', type: 'nominal', title: null },
    },
  };
}

/** The learning-rate finder's curve: smoothed loss against a log-scaled learning rate, with the suggestion marked. */
export function lrFinderSpec(
  result: Pick<LrFinderResult, 'points' | 'suggestedLr'>,
  title = 'Learning-rate finder',
): TopLevelSpec {
  const finite = result.points.filter((p) => Number.isFinite(p.smoothed));
  const floor = Math.min(...finite.map((p) => p.smoothed));
  // Past divergence the loss explodes; clip the axis so that the descent stays readable.
  const ceiling = Math.max(finite[0]?.smoothed ?? 1, floor) * 1.5;
  return {
    ...FONT,
    title,
    width: 360,
    height: 220,
    layer: [
      {
        data: { values: finite.map((p) => ({ lr: p.lr, loss: Math.min(p.smoothed, ceiling) })) },
        mark: 'line',
        encoding: {
          x: { field: 'lr', type: 'quantitative', scale: { type: 'log' }, title: 'learning rate (log scale)' },
          y: {
            field: 'loss',
            type: 'quantitative',
            title: 'smoothed loss',
            scale: { zero: false, domain: [floor * 0.95, ceiling] },
          },
        },
      },
      {
        data: { values: [{ lr: result.suggestedLr, label: `suggested ${result.suggestedLr.toExponential(1)}` }] },
        mark: { type: 'rule', color: '#d62728', strokeDash: [4, 3] },
        encoding: { x: { field: 'lr', type: 'quantitative' } },
      },
      {
        data: { values: [{ lr: result.suggestedLr, label: `suggested ${result.suggestedLr.toExponential(1)}` }] },
        mark: { type: 'text', align: 'left', dx: 4, dy: -90, color: '#d62728' },
        encoding: { x: { field: 'lr', type: 'quantitative' }, text: { field: 'label' } },
      },
    ],
  };
}
