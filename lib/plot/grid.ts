/** A grid of photos with captions (one sample per class, predictions...), as one PNG. */
import sharp from 'sharp';

import { escapeXml } from '../util/errors';

export interface GridItem {
  /** A photo's path, or encoded image bytes (a rendered heatmap, say). */
  file: string | Buffer;
  caption: string;
}

export async function photoGrid(
  items: readonly GridItem[],
  options: { columns?: number; tile?: number } = {},
): Promise<Buffer> {
  const columns = options.columns ?? 3;
  const tile = options.tile ?? 220;
  const captionHeight = 26;
  const rows = Math.ceil(items.length / columns);
  const composites = await Promise.all(
    items.map(async (item, k) => {
      const left = (k % columns) * tile;
      const top = Math.floor(k / columns) * (tile + captionHeight);
      const image = await sharp(item.file, { autoOrient: true })
        .resize(tile, tile, { fit: 'cover' })
        .removeAlpha()
        .png()
        .toBuffer();
      const caption = Buffer.from(
        `<svg xmlns="http://www.w3.org/2000/svg" width="${tile}" height="${captionHeight}"><rect width="100%" height="100%" fill="white"/><text x="${tile / 2}" y="18" font-size="${captionFontSize(item.caption, tile)}" text-anchor="middle" font-family="DejaVu Sans, sans-serif">${escapeXml(item.caption)}</text></svg>`,
      );
      return [
        { input: image, left, top },
        { input: caption, left, top: top + tile },
      ];
    }),
  );
  return sharp({
    create: { width: columns * tile, height: rows * (tile + captionHeight), channels: 3, background: '#ffffff' },
  })
    .composite(composites.flat())
    .png()
    .toBuffer();
}

/**
 * 14 px, or smaller so that the caption fits its tile instead of running into the next one. DejaVu Sans
 * averages about 0.6 em per character; the renderer has no text measuring to ask.
 */
export function captionFontSize(caption: string, tile: number): number {
  return Math.max(8, Math.min(14, Math.floor((tile - 8) / (0.6 * Math.max(1, caption.length)))));
}
