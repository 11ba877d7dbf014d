/**
 * Plotly charts: the training-curve figure, rendering to PNG with headless Chromium (skipped, with the
 * reason, where Chromium is missing), the blank-image check, and the Vega-Lite fallback in notebooks.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import sharp from 'sharp';

import { findChromium, historyFigure, historySpec, isBlank, plotlyToPng } from '../lib';
import type { HistoryRow } from '../lib/train/train';
import { showPlotly } from '../lib/notebook';
import { skipRestUnlessCi, tempDir } from './helpers';

const history: HistoryRow[] = [0, 1, 2].flatMap((epoch) =>
  (['train', 'val'] as const).map((phase) => ({
    epoch,
    phase,
    loss: 1 / (epoch + 1) + (phase === 'val' ? 0.1 : 0),
    acc: 0.5 + 0.1 * epoch,
    lr: 0.001,
    seconds: 1,
    imagesPerSecond: 10,
  })),
);

test('historyFigure: one line per phase, epochs counted from 1, the chosen metric', () => {
  const figure = historyFigure(history, 'loss', 'Loss');
  assert.deepEqual(
    figure.data.map((t) => t.name),
    ['train', 'val'],
  );
  assert.deepEqual(figure.data[0].x, [1, 2, 3]);
  assert.deepEqual(
    figure.data[1].y,
    history.filter((r) => r.phase === 'val').map((r) => r.loss),
  );
  assert.deepEqual(
    historyFigure(history, 'acc').data[0].y,
    [0.5, 0.6, 0.7].map((v, i) => history[2 * i].acc),
  );
});

test('plotlyToPng draws the figure with headless Chromium at the asked size and scale', async (t) => {
  if (skipRestUnlessCi(t, !findChromium() && 'Chromium not installed (apt-get install chromium)')) return;
  const png = await plotlyToPng(historyFigure(history, 'acc', 'Accuracy'), { width: 500, height: 300, scale: 2 });
  const meta = await sharp(png).metadata();
  assert.deepEqual([meta.format, meta.width, meta.height], ['png', 1000, 600]);
  assert.equal(await isBlank(png), false);
  // The two traces' colours are on the image: Plotly drew the lines, not only the axes.
  const { data, info } = await sharp(png).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  const count = (r: number, g: number, b: number): number => {
    let n = 0;
    for (let i = 0; i < info.width * info.height * 3; i += 3)
      if (Math.abs(data[i] - r) < 30 && Math.abs(data[i + 1] - g) < 30 && Math.abs(data[i + 2] - b) < 30) n++;
    return n;
  };
  assert.ok(count(0x1f, 0x77, 0xb4) > 200, 'train line (blue)');
  assert.ok(count(0xff, 0x7f, 0x0e) > 200, 'val line (orange)');
});

test('a blank image is detected; a Chromium that fails is a one-line error, and notebooks fall back to Vega-Lite', async () => {
  const white = await sharp({ create: { width: 40, height: 30, channels: 3, background: '#ffffff' } })
    .png()
    .toBuffer();
  assert.equal(await isBlank(white), true);
  const saved = process.env.CHROMIUM;
  process.env.CHROMIUM = '/nonexistent/chromium';
  try {
    await assert.rejects(
      plotlyToPng(historyFigure(history, 'loss')),
      (err: Error) => /^Chromium could not render a Plotly chart/.test(err.message) && !err.message.includes('\n'),
    );
    const file = path.join(tempDir(), 'curve.png');
    await showPlotly(historyFigure(history, 'loss'), file, historySpec(history, 'loss'));
    assert.equal(await isBlank(fs.readFileSync(file)), false, 'the Vega-Lite chart was written instead');
    await assert.rejects(
      showPlotly(historyFigure(history, 'loss'), file),
      /Chromium could not render/,
      'without a fallback the error stands',
    );
  } finally {
    if (saved === undefined) delete process.env.CHROMIUM;
    else process.env.CHROMIUM = saved;
  }
});
