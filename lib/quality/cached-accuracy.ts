/**
 * A feature extractor's accuracy on an ImageFolder from cached backbone features: the backbone is
 * frozen, so the features the cache holds are exactly what it would compute, and comparing models on
 * several versions of a test set (all photos, flagged ones removed) costs only the head.
 */
import * as tf from '../engine/tf';

import { evalTransforms } from '../images';
import type { BoatModel } from '../model';
import { checkClassesMatch } from '../model';
import { extractFeatures } from '../train/features';
import { UserError } from '../util';

export async function cachedFeatureAccuracy(
  model: BoatModel,
  dir: string,
  cacheDir: string,
): Promise<{ accuracy: number; images: number; correct: number }> {
  if (model.mode !== 'feature-extractor')
    throw new UserError('cached features give the accuracy of a feature extractor only (its backbone is frozen)');
  const { preprocessing, inputSize } = model.info;
  const set = await extractFeatures(model, dir, { cacheDir, transform: evalTransforms(preprocessing, inputSize) });
  checkClassesMatch(model.classes, set.dataset.classes, dir);
  const n = set.labels.length;
  const argmax = tf.tidy(() => tf.argMax(model.forwardHead(tf.tensor2d(set.features, [n, set.dim])), 1));
  const predicted = await argmax.data();
  argmax.dispose();
  let correct = 0;
  for (let i = 0; i < n; i++) if (predicted[i] === set.labels[i]) correct++;
  return { accuracy: n > 0 ? correct / n : 0, images: n, correct };
}
