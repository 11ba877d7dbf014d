/**
 * Plotly charts (plotly.js-dist from npm), rendered to PNG by headless Chromium.
 *
 * Plotly needs a DOM to draw, so there is no Node-only path like Vega's View.toSVG. Debian's
 * Chromium (`scripts/run.sh` installs it) loads a page that reads plotly.js from node_modules by a
 * file:// URL, draws the figure as a static plot, and writes a screenshot. Nothing is fetched from
 * a network or CDN. The PNG shows everywhere a notebook is read; where Chromium is missing,
 * `plotlyToPng` says so in one line and callers fall back to a Vega-Lite chart.
 */
import { execFile, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import sharp from 'sharp';

import type { HistoryRow } from '../train/train';
import { UserError } from '../util';

/** One trace (a line, a bar series, …) in Plotly's JSON schema; only the common keys are typed. */
export interface PlotlyTrace {
  type?: 'scatter' | 'bar' | 'heatmap' | 'histogram';
  x?: Array<number | string>;
  y?: Array<number | string>;
  mode?: 'lines' | 'markers' | 'lines+markers';
  name?: string;
  [key: string]: unknown;
}

export interface PlotlyFigure {
  data: PlotlyTrace[];
  layout?: Record<string, unknown>;
}

export interface PlotlyRenderOptions {
  width?: number;
  height?: number;
  /** Device pixels per CSS pixel, for sharp text (2: a 720×420 chart becomes 1440×840). */
  scale?: number;
}

const CHROMIUM_NAMES = ['chromium', 'chromium-browser', 'google-chrome', 'google-chrome-stable'];

/** The Chromium to render with: $CHROMIUM, else the first of the usual names on PATH; null if none. */
export function findChromium(env = process.env): string | null {
  if (env.CHROMIUM) return env.CHROMIUM;
  for (const name of CHROMIUM_NAMES) {
    if (spawnSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' }).status === 0) return name;
  }
  return null;
}

function plotlyScript(): string {
  return require.resolve('plotly.js-dist/plotly.js');
}

function pageHtml(figure: PlotlyFigure, width: number, height: number): string {
  // JSON inside a <script> must not close it early.
  const json = JSON.stringify(figure).replace(/</g, '\\u003c');
  return `<!doctype html><html><head><meta charset="utf-8">
<style>html,body{margin:0;background:#fff;overflow:hidden}</style>
<script src="${pathToFileURL(plotlyScript()).href}"></script></head>
<body><div id="chart" style="width:${width}px;height:${height}px"></div>
<script>
const figure = ${json};
Plotly.newPlot('chart', figure.data, Object.assign({ width: ${width}, height: ${height}, font: { family: 'DejaVu Sans' } }, figure.layout), { staticPlot: true });
</script></body></html>`;
}

/** Renders a Plotly figure to a PNG with headless Chromium. Throws a one-line UserError without Chromium. */
export async function plotlyToPng(figure: PlotlyFigure, options: PlotlyRenderOptions = {}): Promise<Buffer> {
  const { width = 720, height = 420, scale = 2 } = options;
  const chromium = findChromium();
  if (!chromium)
    throw new UserError(
      'Plotly charts render with Chromium, which was not found (apt-get install chromium, or set CHROMIUM)',
    );
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'boat-plotly-'));
  try {
    const page = path.join(dir, 'chart.html');
    const png = path.join(dir, 'chart.png');
    fs.writeFileSync(page, pageHtml(figure, width, height));
    const args = [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--hide-scrollbars',
      '--allow-file-access-from-files',
      `--user-data-dir=${path.join(dir, 'profile')}`,
      `--window-size=${width},${height}`,
      `--force-device-scale-factor=${scale}`,
      '--virtual-time-budget=10000',
      `--screenshot=${png}`,
      pathToFileURL(page).href,
    ];
    await new Promise<void>((resolve, reject) => {
      execFile(chromium, args, { timeout: 60_000 }, (err, _stdout, stderr) => {
        if (err && !fs.existsSync(png))
          reject(
            new UserError(
              `Chromium could not render a Plotly chart: ${String(stderr || err.message)
                .trim()
                .split('\n')
                .pop()}`,
            ),
          );
        else resolve();
      });
    });
    const image = fs.readFileSync(png);
    if (await isBlank(image))
      throw new UserError('Chromium rendered a blank Plotly chart (plotly.js did not load or draw)');
    return image;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** True when an image is one flat colour (nothing was drawn). */
export async function isBlank(png: Buffer): Promise<boolean> {
  const { channels } = await sharp(png).stats();
  return channels.slice(0, 3).every((c) => c.max - c.min < 8);
}

/** Loss or accuracy per epoch, train vs val (the tutorial's curves), as a Plotly figure. */
export function historyFigure(history: readonly HistoryRow[], metric: 'loss' | 'acc', title?: string): PlotlyFigure {
  const trace = (phase: 'train' | 'val', color: string): PlotlyTrace => {
    const rows = history.filter((r) => r.phase === phase);
    return {
      type: 'scatter',
      mode: 'lines+markers',
      name: phase,
      x: rows.map((r) => r.epoch + 1),
      y: rows.map((r) => r[metric]),
      line: { color },
      marker: { size: 6 },
    };
  };
  const epochs = Math.max(0, ...history.map((r) => r.epoch + 1));
  return {
    data: [trace('train', '#1f77b4'), trace('val', '#ff7f0e')],
    layout: {
      title: { text: title ?? (metric === 'loss' ? 'Loss' : 'Accuracy') },
      xaxis: { title: { text: 'epoch' }, dtick: epochs <= 12 ? 1 : undefined },
      yaxis: { title: { text: metric === 'loss' ? 'NLL loss' : 'accuracy' } },
      margin: { l: 70, r: 30, t: 60, b: 60 },
    },
  };
}
