/** Inference: top-k classes of one photo, and the photo with the predicted class drawn on it. */
import * as tf from '../engine/tf';
import sharp from 'sharp';

import { Compose, evalTransforms, FloatImage, openImage, preprocessingSteps, RgbImage } from '../images';
import type { BoatModel } from '../model';
import { escapeXml, Random } from '../util';

export interface Prediction {
  file: string;
  top: Array<{ class: string; probability: number }>;
}

/** A photo through the model's eval transforms (Resize 256, CenterCrop 224, its preprocessing), as a batch of one. */
export async function evalTensor(model: BoatModel, file: string): Promise<tf.Tensor4D> {
  return (await evalInput(model, file)).x;
}

/**
 * The photo as the model sees it (EXIF-oriented, Resize 256, CenterCrop 224) as 8-bit RGB for figures,
 * and the batch of one made from those pixels: one decode for both.
 */
export async function evalInput(model: BoatModel, file: string): Promise<{ view: RgbImage; x: tf.Tensor4D }> {
  const view = await evalTransforms(model.info.preprocessing, model.info.inputSize).preview(
    await openImage(file),
    new Random(0),
  );
  const image = (await new Compose(preprocessingSteps(model.info.preprocessing)).apply(
    view,
    new Random(0),
  )) as FloatImage;
  return { view, x: tf.tensor4d(image.data, [1, image.height, image.width, 3]) };
}

export async function predictImage(model: BoatModel, file: string, k = 3): Promise<Prediction> {
  const x = await evalTensor(model, file);
  const probsT = tf.tidy(() => tf.exp(model.forward(x)));
  x.dispose();
  const probs = await probsT.data(); // asynchronous: the webgpu backend cannot read synchronously in Node
  probsT.dispose();
  const top = Array.from(probs, (p, i) => ({ class: model.classes[i], probability: p }))
    .sort((a, b) => b.probability - a.probability)
    .slice(0, Math.min(k, model.classes.length));
  return { file, top };
}

/** The photo (EXIF-oriented, at most `maxSide` px) with "Output class: …" in its top-right corner, as PNG. */
export async function annotatePrediction(file: string, label: string, maxSide = 640): Promise<Buffer> {
  const base = await sharp(file, { autoOrient: true })
    .resize(maxSide, maxSide, { fit: 'inside', withoutEnlargement: true })
    .removeAlpha()
    .toColourspace('srgb')
    .png()
    .toBuffer({ resolveWithObject: true });
  const { width, height } = base.info;
  const size = Math.max(12, Math.round(width / 28));
  const text = escapeXml(`Output class: ${label}`);
  const boxWidth = Math.min(width, Math.round(text.length * size * 0.6) + size);
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">
    <rect x="${width - boxWidth}" y="0" width="${boxWidth}" height="${size * 1.8}" fill="black" opacity="0.6"/>
    <text x="${width - size / 2}" y="${size * 1.3}" font-family="DejaVu Sans, sans-serif" font-size="${size}" fill="white" text-anchor="end">${text}</text></svg>`;
  return sharp(base.data)
    .composite([{ input: Buffer.from(svg), left: 0, top: 0 }])
    .png()
    .toBuffer();
}
