/**
 * Helpers for the tslab notebooks: a parameters cell that environment variables override, PNG display
 * of Vega-Lite and Plotly charts, and a progress display that updates in place in the cell. Everything shown is PNG or plain text,
 * which every front end renders (untrusted HTML/SVG is hidden in classic Notebook).
 */
import * as path from 'node:path';
import type { TopLevelSpec } from 'vega-lite';

import { vegaLiteToPng } from '../plot/charts';
import { displayPath, showPathsRelativeUnder } from '../util/paths';
import { PlotlyFigure, plotlyToPng } from '../plot/plotly';
import { phaseLine, progressLine, ProgressSink } from '../train/progress';

interface TslabDisplay {
  png(b: Uint8Array): void;
  text(s: string): void;
}
interface Tslab {
  display: TslabDisplay;
  newDisplay(): TslabDisplay;
}

/** tslab's display API inside a running tslab kernel; null elsewhere (a script or a test requiring this module). */
function tslab(): Tslab | null {
  try {
    // tslab can be required outside a kernel, but its display then throws "Not ready".
    const jupyter = require('tslab/dist/jupyter') as { lastWriteDisplayData?: unknown };
    if (jupyter.lastWriteDisplayData == null) return null;
    return require('tslab') as Tslab;
  } catch {
    return null;
  }
}

export interface NotebookParams {
  /** Folder with boats/ (the ImageFolder) and, after the split, train/, val/, test/. */
  dataRoot: string;
  /** Where models are saved. */
  modelsDir: string;
  /** Where charts are also written as PNG files. */
  figuresDir: string;
  epochs: number;
  /** Fine-tuning epochs (default: epochs). */
  finetuneEpochs: number;
  /** Fine-tune only the last N of ResNet50's 5 stages; 0 = the whole network, as in the tutorial. */
  unfreeze: number;
  seed: number;
  /** Demo images per class when the demo set has to be made. */
  demoPerClass: number;
  /** Augmented training views for the feature extractor. */
  views: number;
  /** Feature cache of the feature extractor. */
  cacheDir: string;
  /** Continue notebook 03's fine-tune from its last epoch checkpoint (after a kernel died or was stopped). */
  resume: boolean;
}

/** The checkout this module was built in (dist/lib/notebook/ is three levels below it). */
const REPO_ROOT = path.resolve(__dirname, '..', '..', '..');

/**
 * A folder as the notebook shows and uses it: relative to the notebook's folder when it lies inside this
 * checkout (see showPathsRelativeUnder), absolute elsewhere.
 */
export function notebookPath(p: string): string {
  showPathsRelativeUnder(REPO_ROOT);
  return displayPath(p);
}

/**
 * The parameters cell: defaults for a full run, each overridable by an environment variable
 * (BOAT_DATA_ROOT, BOAT_MODELS, BOAT_FIGURES, BOAT_EPOCHS, BOAT_FT_EPOCHS, BOAT_UNFREEZE, BOAT_SEED,
 * BOAT_DEMO_PER_CLASS, BOAT_VIEWS, BOAT_CACHE_DIR, BOAT_RESUME=1;
 * BOAT_BACKEND picks the backend, BOAT_PRECISION=fp32|bf16|auto its precision), so CI runs the same notebooks quickly on the demo set.
 */
export function notebookParams(defaults: Partial<NotebookParams> = {}): NotebookParams {
  const env = process.env;
  const num = (name: string, fallback: number): number =>
    env[name] !== undefined && env[name] !== '' ? Number(env[name]) : fallback;
  const epochs = num('BOAT_EPOCHS', defaults.epochs ?? 24);
  const params: NotebookParams = {
    dataRoot: notebookPath(env.BOAT_DATA_ROOT || defaults.dataRoot || '../data'),
    modelsDir: notebookPath(env.BOAT_MODELS || defaults.modelsDir || '../models'),
    figuresDir: notebookPath(env.BOAT_FIGURES || defaults.figuresDir || '../runs/figures'),
    epochs,
    finetuneEpochs: num('BOAT_FT_EPOCHS', defaults.finetuneEpochs ?? epochs),
    unfreeze: num('BOAT_UNFREEZE', defaults.unfreeze ?? 0),
    seed: num('BOAT_SEED', defaults.seed ?? 38),
    demoPerClass: num('BOAT_DEMO_PER_CLASS', defaults.demoPerClass ?? 40),
    views: num('BOAT_VIEWS', defaults.views ?? 0),
    cacheDir: notebookPath(env.BOAT_CACHE_DIR || defaults.cacheDir || '../.cache/features'),
    resume:
      env.BOAT_RESUME !== undefined && env.BOAT_RESUME !== ''
        ? env.BOAT_RESUME === '1' || env.BOAT_RESUME === 'true'
        : (defaults.resume ?? false),
  };
  for (const [k, v] of Object.entries(params))
    if (typeof v === 'number' && !Number.isFinite(v)) throw new Error(`parameter ${k} is not a number`);
  return params;
}

/** Shows a PNG in the cell (and, outside a notebook, does nothing). */
export function showPng(png: Uint8Array): void {
  tslab()?.display.png(png);
}

/** Renders a Vega-Lite chart, shows it, and writes it to `file` when given. */
export async function showChart(spec: TopLevelSpec, file?: string): Promise<void> {
  await showAndSave(await vegaLiteToPng(spec), file);
}

/** Shows a chart's PNG and writes it to `file` when given. */
async function showAndSave(png: Buffer, file?: string): Promise<void> {
  if (file) {
    const { writeFileAtomic } = await import('../util/files');
    writeFileAtomic(file, png);
  }
  showPng(png);
}

let plotlyFallbackNoted = false;

/**
 * Renders a Plotly figure (headless Chromium), shows it, and writes it to `file` when given. Without
 * Chromium it shows `fallback` (the same chart in Vega-Lite) instead, and says so once.
 */
export async function showPlotly(figure: PlotlyFigure, file?: string, fallback?: TopLevelSpec): Promise<void> {
  let png: Buffer;
  try {
    png = await plotlyToPng(figure);
  } catch (err) {
    if (!fallback) throw err;
    if (!plotlyFallbackNoted) console.log(`note: ${(err as Error).message}; showing the Vega-Lite version`);
    plotlyFallbackNoted = true;
    png = await vegaLiteToPng(fallback);
  }
  await showAndSave(png, file);
}

/**
 * Progress for trainModel/runExperiment that rewrites one output of the cell in place: the bar of the
 * phase running now and the last finished epoch. Nothing is printed per epoch, so the cell ends with the
 * final bar; print `historyTable(result.history)` after the run for the whole story. `label` (e.g.
 * "stage 2") starts every line, for runs made of several trainings.
 */
export function notebookProgress(epochs: number, label?: string): ProgressSink {
  const prefix = label ? `${label}: ` : '';
  const t = tslab();
  if (!t) return { batch: () => undefined, phase: (row) => console.log(prefix + phaseLine(row, epochs)) };
  const live = t.newDisplay();
  let bar = '';
  let finished = '';
  let last = 0;
  return {
    batch({ epoch, phase, done, total, seconds }) {
      const now = Date.now();
      if (now - last < 250 && done < total) return;
      last = now;
      bar = progressLine(
        prefix + (epoch < 0 ? 'features' : `epoch ${epoch + 1}/${epochs} ${phase}`),
        done,
        total,
        seconds,
      );
      live.text(finished ? `${bar}\nlast finished: ${finished}` : bar);
    },
    phase(row) {
      finished = prefix + phaseLine(row, epochs);
      live.text(bar ? `${bar}\nlast finished: ${finished}` : finished);
    },
  };
}
