/**
 * Where the model goes wrong: the test images with the highest loss, and the class pairs it confuses
 * most (fastai's plot_top_losses and most_confused).
 */
import * as path from 'node:path';

import type { EvaluationResult } from '../evaluate';
import { photoGrid } from '../plot';

export interface TopLoss {
  file: string;
  actual: string;
  predicted: string;
  /** Probability of the predicted class, and of the actual one. */
  probability: number;
  actualProbability: number;
  /** Negative log-likelihood of the actual class. */
  loss: number;
}

/** The `n` images with the highest loss (the actual class got the least probability), highest first. */
export function topLosses(evaluation: EvaluationResult, classes: readonly string[], n = 9): TopLoss[] {
  return evaluation.files
    .map((file, i) => {
      const p = evaluation.probabilities[i];
      const actualProbability = p[evaluation.actual[i]];
      return {
        file,
        actual: classes[evaluation.actual[i]],
        predicted: classes[evaluation.predicted[i]],
        probability: p[evaluation.predicted[i]],
        actualProbability,
        loss: -Math.log(Math.max(actualProbability, 1e-12)),
      };
    })
    .sort((a, b) => b.loss - a.loss || a.file.localeCompare(b.file))
    .slice(0, n);
}

export interface ConfusedPair {
  actual: string;
  predicted: string;
  count: number;
}

/** Off-diagonal cells of the confusion matrix with at least `minCount` images, most frequent first. */
export function mostConfused(
  evaluation: Pick<EvaluationResult, 'confusion' | 'classes'>,
  minCount = 1,
): ConfusedPair[] {
  const pairs: ConfusedPair[] = [];
  evaluation.confusion.forEach((row, a) =>
    row.forEach((count, p) => {
      if (a !== p && count >= minCount)
        pairs.push({ actual: evaluation.classes[a], predicted: evaluation.classes[p], count });
    }),
  );
  return pairs.sort(
    (x, y) => y.count - x.count || x.actual.localeCompare(y.actual) || x.predicted.localeCompare(y.predicted),
  );
}

/** The top losses as a captioned photo grid: "predicted / actual / loss / probability", as fastai labels it. */
export function topLossesPng(items: readonly TopLoss[], columns = 3): Promise<Buffer> {
  return photoGrid(
    items.map((t) => ({
      file: t.file,
      caption: `${t.predicted} / ${t.actual} / ${t.loss.toFixed(2)} / ${t.probability.toFixed(2)}`,
    })),
    { columns, tile: 240 },
  );
}

/** One line per pair, for the terminal. */
export function formatConfused(pairs: readonly ConfusedPair[]): string {
  if (pairs.length === 0) return 'most confused: none (no misclassified images)';
  return [
    'most confused (actual → predicted: images)',
    ...pairs.map((p) => `  ${p.actual} → ${p.predicted}: ${p.count}`),
  ].join('\n');
}

export function topLossesLines(items: readonly TopLoss[]): string {
  return [
    'top losses (predicted / actual / loss / probability)',
    ...items.map(
      (t) =>
        `  ${path.basename(t.file)}: ${t.predicted} / ${t.actual} / ${t.loss.toFixed(2)} / ${t.probability.toFixed(2)}`,
    ),
  ].join('\n');
}
