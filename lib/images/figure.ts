/** The tutorial's augmentation figure: the original photo and 8 augmented versions, 3×3, as one PNG. */
import sharp from 'sharp';

import { Random } from '../util';
import { decodeRgb, openImage } from './sample';
import type { RgbImage } from './types';
import { CenterCrop, Compose, Resize } from './transforms';

export interface AugmentationFigureOptions {
  seed?: number;
  /** Tile edge in pixels. */
  tile?: number;
  /** Gap between tiles in pixels. */
  gap?: number;
}

export async function augmentationFigure(
  file: string,
  transform: Compose,
  options: AugmentationFigureOptions = {},
): Promise<Buffer> {
  const tile = options.tile ?? 224;
  const gap = options.gap ?? 6;
  const seed = options.seed ?? 0;
  const source = await openImage(file);
  const original = await new Compose([new Resize(tile), new CenterCrop(tile)]).preview(source, new Random(seed));
  const views: RgbImage[] = [original];
  for (let k = 1; k < 9; k++) views.push(await transform.preview(source, Random.derive(seed, 'figure', k)));
  const side = 3 * tile + 4 * gap;
  const tiles = await Promise.all(
    views.map(async (v, k) => ({
      input: await sharp(await decodeRgb(v).then((img) => img.data), {
        raw: { width: v.width, height: v.height, channels: 3 },
      })
        .resize(tile, tile, { fit: 'fill' })
        .png()
        .toBuffer(),
      left: gap + (k % 3) * (tile + gap),
      top: gap + Math.floor(k / 3) * (tile + gap),
    })),
  );
  return sharp({ create: { width: side, height: side, channels: 3, background: '#ffffff' } })
    .composite(tiles)
    .png()
    .toBuffer();
}
