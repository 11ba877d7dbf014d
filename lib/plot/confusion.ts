/**
 * The tutorial's confusion-matrix heatmap (seaborn in the original), drawn as SVG and rasterised to
 * PNG by sharp, so it shows in every notebook front end and as a file for CLI users.
 */
import sharp from 'sharp';

import { escapeXml } from '../util/errors';

import type { Metrics } from '../evaluate/metrics';

/** Light to dark blue, like seaborn's "Blues". */
function blue(t: number): string {
  const lerp = (a: number, b: number): number => Math.round(a + (b - a) * Math.max(0, Math.min(1, t)));
  return `rgb(${lerp(247, 8)},${lerp(251, 48)},${lerp(255, 107)})`;
}

export function confusionMatrixSvg(metrics: Metrics, options: { normalize?: boolean; title?: string } = {}): string {
  const normalize = options.normalize ?? false;
  const values = normalize ? metrics.confusionNormalized : metrics.confusion;
  const k = metrics.classes.length;
  const cell = 64;
  const left = 120;
  const top = 60;
  const width = left + k * cell + 30;
  const height = top + k * cell + 90;
  const max = Math.max(1e-9, ...values.flat());
  const title =
    options.title ?? `Confusion matrix${normalize ? ' (normalised)' : ''}, accuracy ${metrics.accuracy.toFixed(3)}`;
  const parts = [
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="${width / 2}" y="28" font-size="16" text-anchor="middle" font-family="DejaVu Sans, sans-serif">${escapeXml(title)}</text>`,
  ];
  values.forEach((row, i) =>
    row.forEach((v, j) => {
      const t = v / max;
      const x = left + j * cell;
      const y = top + i * cell;
      parts.push(`<rect x="${x}" y="${y}" width="${cell}" height="${cell}" fill="${blue(t)}" stroke="white"/>`);
      const label = normalize ? v.toFixed(2) : String(v);
      parts.push(
        `<text x="${x + cell / 2}" y="${y + cell / 2 + 5}" font-size="14" text-anchor="middle" font-family="DejaVu Sans, sans-serif" fill="${t > 0.5 ? 'white' : 'black'}">${label}</text>`,
      );
    }),
  );
  metrics.classes.forEach((c, i) => {
    parts.push(
      `<text x="${left - 8}" y="${top + i * cell + cell / 2 + 5}" font-size="12" text-anchor="end" font-family="DejaVu Sans, sans-serif">${escapeXml(c)}</text>`,
    );
    const x = left + i * cell + cell / 2;
    const y = top + k * cell + 12;
    parts.push(
      `<text x="${x}" y="${y}" font-size="12" text-anchor="end" font-family="DejaVu Sans, sans-serif" transform="rotate(-40 ${x} ${y})">${escapeXml(c)}</text>`,
    );
  });
  parts.push(
    `<text x="${left + (k * cell) / 2}" y="${height - 8}" font-size="13" text-anchor="middle" font-family="DejaVu Sans, sans-serif">predicted</text>`,
  );
  parts.push(
    `<text x="16" y="${top + (k * cell) / 2}" font-size="13" text-anchor="middle" font-family="DejaVu Sans, sans-serif" transform="rotate(-90 16 ${top + (k * cell) / 2})">actual</text>`,
  );
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">${parts.join('')}</svg>`;
}

export function confusionMatrixPng(
  metrics: Metrics,
  options: { normalize?: boolean; title?: string } = {},
): Promise<Buffer> {
  return sharp(Buffer.from(confusionMatrixSvg(metrics, options)), { density: 144 })
    .png()
    .toBuffer();
}
