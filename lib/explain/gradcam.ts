/**
 * Grad-CAM (Selvaraju et al., 2017) over ResNet50's last convolutional stage: which parts of the photo
 * the score of a class depends on. The class score is the head's logit before log-softmax; each of the
 * 2048 feature maps is weighted by the mean gradient of that score over its 7×7 positions, and the
 * positive part of the weighted sum is the heatmap.
 */
import * as tf from '../engine/tf';
import sharp from 'sharp';

import { evalInput } from '../evaluate/predict';
import type { RgbImage } from '../images';
import type { BoatModel } from '../model';
import { escapeXml } from '../util';

export interface GradCam {
  file: string;
  /** The class explained, and the model's probability for it. */
  classIndex: number;
  className: string;
  probability: number;
  /** The class the model predicts, with its probability. */
  predicted: { className: string; probability: number };
  /** Heatmap over the last stage's grid (7×7 for 224 px input), row-major, scaled to [0, 1]. */
  heatmap: Float32Array;
  size: number;
  /** The photo as the model saw it (Resize 256, CenterCrop 224), for the overlay. */
  view: RgbImage;
}

/** The head up to its logits (log-softmax left out), in inference mode. */
function logits(model: BoatModel, features: tf.Tensor2D): tf.Tensor2D {
  let x: tf.Tensor = features;
  for (const layer of model.head.layers.slice(1)) {
    if (layer.name === 'log_softmax') break;
    x = layer.apply(x, { training: false }) as tf.Tensor;
  }
  return x as tf.Tensor2D;
}

async function read(t: tf.Tensor): Promise<tf.TypedArray> {
  const values = await t.data();
  t.dispose();
  return values;
}

/** Grad-CAM for one preprocessed image ([1, H, W, 3]); `classIndex` defaults to the predicted class. */
export async function gradCamTensor(
  model: BoatModel,
  x: tf.Tensor4D,
  classIndex?: number,
): Promise<{ heatmap: Float32Array; size: number; probs: Float32Array; classIndex: number }> {
  // The backbone's forward has BatchNorm folded (model.featureMaps): exact, as inference-mode BatchNorm
  // is affine, and the gradient below starts at these maps anyway.
  const maps = model.featureMaps(x);
  // Reads are asynchronous: the webgpu backend cannot read synchronously in Node.
  const probs = (await read(
    tf.tidy(() => tf.softmax(logits(model, tf.mean<tf.Tensor2D>(maps, [1, 2])))),
  )) as Float32Array;
  const c = classIndex ?? probs.indexOf(Math.max(...probs));
  if (!Number.isInteger(c) || c < 0 || c >= model.classes.length) {
    maps.dispose();
    throw new RangeError(`class index ${c} is outside 0..${model.classes.length - 1}`);
  }
  const heatmapT = tf.tidy(() => {
    // A one-hot mask rather than gather: gather's gradient needs UnsortedSegmentSum, which wasm lacks.
    const mask = tf.oneHot([c], model.classes.length).toFloat();
    const score = (a: tf.Tensor): tf.Scalar =>
      tf.sum<tf.Scalar>(tf.mul(logits(model, tf.mean<tf.Tensor2D>(a, [1, 2])), mask));
    const grads = tf.grad(score)(maps);
    const weights = tf.mean(grads, [1, 2], true); // [1, 1, 1, channels]
    const cam = tf.relu(tf.sum(tf.mul(maps, weights), -1)).squeeze([0]); // [h, w]
    const max = tf.max(cam);
    return tf.div(cam, tf.maximum(max, 1e-12));
  });
  const heatmap = (await read(heatmapT)) as Float32Array;
  const size = maps.shape[1];
  maps.dispose();
  return { heatmap, size, probs, classIndex: c };
}

/** Grad-CAM for a photo, through the model's eval transforms (Resize 256, CenterCrop 224). */
export async function gradCam(model: BoatModel, file: string, classIndex?: number): Promise<GradCam> {
  const { view, x } = await evalInput(model, file);
  const result = await gradCamTensor(model, x, classIndex);
  x.dispose();
  const top = result.probs.indexOf(Math.max(...result.probs));
  return {
    file,
    classIndex: result.classIndex,
    className: model.classes[result.classIndex],
    probability: result.probs[result.classIndex],
    predicted: { className: model.classes[top], probability: result.probs[top] },
    heatmap: result.heatmap,
    size: result.size,
    view,
  };
}

/** A jet-like colour map: blue (0) → cyan → yellow → red (1). */
function colour(v: number): [number, number, number] {
  const clamp = (x: number): number => Math.round(255 * Math.min(1, Math.max(0, x)));
  return [clamp(1.5 - Math.abs(4 * v - 3)), clamp(1.5 - Math.abs(4 * v - 2)), clamp(1.5 - Math.abs(4 * v - 1))];
}

/**
 * The photo as the model saw it (`cam.view`) with the heatmap blended over it and a caption, as PNG
 * (`side` px square).
 */
export async function gradCamPng(cam: GradCam, options: { side?: number; opacity?: number } = {}): Promise<Buffer> {
  const side = options.side ?? 336;
  const opacity = options.opacity ?? 0.45;
  const { data, width, height } = cam.view;
  const photo = await sharp(data, { raw: { width, height, channels: 3 } })
    .resize(side, side)
    .png()
    .toBuffer();
  const rgba = Buffer.alloc(cam.size * cam.size * 4);
  cam.heatmap.forEach((v, i) => {
    const [r, g, b] = colour(v);
    rgba.set([r, g, b, Math.round(255 * opacity * (0.25 + 0.75 * v))], i * 4);
  });
  const overlay = await sharp(rgba, { raw: { width: cam.size, height: cam.size, channels: 4 } })
    .resize(side, side, { kernel: 'cubic' })
    .png()
    .toBuffer();
  const text = escapeXml(`${cam.className} ${(100 * cam.probability).toFixed(0)}%`);
  const caption = Buffer.from(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${side}" height="24"><rect width="100%" height="100%" fill="black" opacity="0.6"/><text x="6" y="17" font-size="15" font-family="DejaVu Sans, sans-serif" fill="white">Grad-CAM: ${text}</text></svg>`,
  );
  return sharp(photo)
    .composite([
      { input: overlay, left: 0, top: 0 },
      { input: caption, left: 0, top: 0 },
    ])
    .png()
    .toBuffer();
}

/** Where the heatmap peaks, as (row, column) in its grid. */
export function heatmapPeak(cam: { heatmap: Float32Array; size: number }): { row: number; column: number } {
  const i = cam.heatmap.indexOf(Math.max(...cam.heatmap));
  return { row: Math.floor(i / cam.size), column: i % cam.size };
}
