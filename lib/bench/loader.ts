/**
 * Loader benchmark: JPEG → 224×224 float tensors, with eval and with train transforms, with the JPEG
 * addon and with sharp alone, next to a plain sharp pipeline (decode + resize + centre crop to raw
 * bytes, no tensor: the reference the targets were set against), and a check that prefetching hides
 * decoding behind the consumer's work.
 */
import * as tf from '../engine/tf';
import sharp from 'sharp';

import { scanImageFolder } from '../data/scan';
import {
  DataLoader,
  decodeRgb,
  evalTransforms,
  ImageFolder,
  jpegAddonActive,
  jpegDecoderName,
  openImage,
  randomResizedCropBox,
  resizedCrop,
  resizedCropOnGrid,
  setJpegAddon,
  trainTransforms,
} from '../images';
import { defaultConcurrency, mapLimit, now, Random, secondsSince } from '../util';

export interface LoaderBenchResult {
  images: number;
  concurrency: number;
  plain_sharp_img_s: number;
  /** Who decodes plain JPEGs in the loader runs: the JPEG addon when built, else sharp. */
  jpeg_decoder: string;
  loader_eval_img_s: number;
  loader_train_img_s: number;
  /** The same two runs with the JPEG addon turned off (sharp decodes everything); absent without the addon. */
  loader_eval_sharp_img_s?: number;
  loader_train_sharp_img_s?: number;
  /** With a consumer busy for as long as one batch takes to decode: share of wall time spent waiting for batches. */
  prefetch_wait_fraction: number;
  /** Wall time of that run over (decode time + consumer time): about 0.5 when overlap is perfect, 1 when none. */
  prefetch_overlap_ratio: number;
  /** RandomResizedCrop(256, 0.8–1) boxes decoded crop-first (exact) and resize-first on the pixel grid, ms per image, one at a time, interleaved. */
  rrc_exact_ms: number;
  rrc_grid_ms: number;
}

/** The two ways of decoding a random resized crop, timed on the same boxes in alternating rounds. */
async function resizedCropTimes(files: string[]): Promise<{ exact: number; grid: number }> {
  const rng = new Random(3);
  const sources = await Promise.all(files.map((f) => openImage(f)));
  const boxes = sources.map((s) => randomResizedCropBox(s.width, s.height, [0.8, 1], [3 / 4, 4 / 3], rng));
  const total = { exact: 0, grid: 0 };
  for (let round = 0; round < 3; round++) {
    for (const way of ['exact', 'grid'] as const) {
      const t = now();
      for (let i = 0; i < sources.length; i++)
        await decodeRgb(
          way === 'exact' ? await resizedCrop(sources[i], boxes[i], 256) : resizedCropOnGrid(sources[i], boxes[i], 256),
        );
      total[way] += secondsSince(t);
    }
  }
  const ms = (s: number): number => (1000 * s) / (3 * sources.length);
  return { exact: ms(total.exact), grid: ms(total.grid) };
}

async function plainSharp(files: string[], concurrency: number): Promise<number> {
  const t = now();
  await mapLimit(files, concurrency, async (f) => {
    const meta = await sharp(f).metadata();
    const short = Math.min(meta.width ?? 0, meta.height ?? 0);
    const w = Math.floor(((meta.width ?? 0) * 256) / short);
    const h = Math.floor(((meta.height ?? 0) * 256) / short);
    await sharp(f)
      .resize(w, h)
      .extract({ left: (w - 224) >> 1, top: (h - 224) >> 1, width: 224, height: 224 })
      .raw()
      .toBuffer();
  });
  return files.length / secondsSince(t);
}

async function drain(
  loader: DataLoader,
  epoch: number,
  busyMs = 0,
): Promise<{ seconds: number; waited: number; images: number }> {
  const t = now();
  let waited = 0;
  let images = 0;
  const it = loader.batches(epoch);
  for (;;) {
    const w = now();
    const next = await it.next();
    waited += secondsSince(w);
    if (next.done) break;
    images += next.value.x.shape[0];
    tf.dispose([next.value.x, next.value.y]);
    // Synchronous work on the main thread stands in for a training step.
    const until = Date.now() + busyMs;
    while (Date.now() < until);
  }
  return { seconds: secondsSince(t), waited, images };
}

export async function benchLoader(
  root: string,
  limit: number,
  concurrency = defaultConcurrency(),
): Promise<LoaderBenchResult> {
  const files = scanImageFolder(root)
    .files.map((f) => f.file)
    .slice(0, limit);
  // ImageFolder lists files in the scan's order, so its first `limit` samples are the plain pipeline's files.
  const indices = files.map((_, i) => i);
  const make = (train: boolean): DataLoader =>
    new DataLoader(new ImageFolder(root, train ? trainTransforms() : evalTransforms()), {
      batchSize: 32,
      shuffle: true,
      seed: 0,
      concurrency,
      indices,
    });
  await plainSharp(files.slice(0, 16), concurrency); // warm-up
  const plain = await plainSharp(files, concurrency);
  const evalRun = await drain(make(false), 0);
  const trainRun = await drain(make(true), 0);
  let sharpOnly: { eval: number; train: number } | undefined;
  if (jpegAddonActive()) {
    setJpegAddon(false);
    try {
      const [e, t] = [await drain(make(false), 0), await drain(make(true), 0)];
      sharpOnly = { eval: e.images / e.seconds, train: t.images / t.seconds };
    } finally {
      setJpegAddon(true);
    }
  }
  const perBatchMs = (1000 * trainRun.seconds) / Math.ceil(trainRun.images / 32);
  const busy = await drain(make(true), 1, perBatchMs);
  const consumerSeconds = (perBatchMs / 1000) * Math.ceil(busy.images / 32);
  const crops = await resizedCropTimes(files.slice(0, 40));
  return {
    images: files.length,
    concurrency,
    plain_sharp_img_s: plain,
    jpeg_decoder: jpegDecoderName(),
    loader_eval_img_s: evalRun.images / evalRun.seconds,
    loader_train_img_s: trainRun.images / trainRun.seconds,
    ...(sharpOnly ? { loader_eval_sharp_img_s: sharpOnly.eval, loader_train_sharp_img_s: sharpOnly.train } : {}),
    prefetch_wait_fraction: busy.waited / busy.seconds,
    prefetch_overlap_ratio: busy.seconds / (trainRun.seconds + consumerSeconds),
    rrc_exact_ms: crops.exact,
    rrc_grid_ms: crops.grid,
  };
}
