/**
 * Discriminative learning rates (fastai's `fine_tune`, Howard & Ruder 2018): each of ResNet50's 5 stages
 * and the head is a group, the earliest stage at lr / lrMult and the head at lr, geometric in between, so
 * the generic early filters move least and the task-specific layers most.
 *
 * The trainer applies a group's rate as a multiplier on that variable's gradient before SGD with
 * momentum. For SGD that is exactly a per-variable learning rate: the momentum buffer is linear in the
 * gradients (v ← m·v + k·g, w ← w − lr·v), so every step of that variable is k times the plain one. It is
 * not for Adam, which divides the step by the gradient's own scale; the trainer refuses that pairing.
 */
import * as tf from '../engine/tf';

import { resnetStage, type BoatModel } from '../model';

/** The groups, earliest first: stages 1–5, then the head. */
export const RATE_GROUPS = ['stage1', 'stage2', 'stage3', 'stage4', 'stage5', 'head'] as const;
export type RateGroup = (typeof RATE_GROUPS)[number];

/** Group g of RATE_GROUPS gets lrMult^((g − last) / last): 1/lrMult for stage 1, 1 for the head. */
export function groupMultipliers(lrMult: number): Record<RateGroup, number> {
  if (!(lrMult >= 1)) throw new RangeError(`lrMult must be at least 1, got ${lrMult}`);
  const last = RATE_GROUPS.length - 1;
  return Object.fromEntries(RATE_GROUPS.map((g, i) => [g, lrMult ** ((i - last) / last)])) as Record<RateGroup, number>;
}

/**
 * The rate multiplier of each of the model's trainable variables, keyed by variable name (what the
 * optimizer's gradients are keyed by): its ResNet stage's group, or the head's. A backbone weight with
 * no stage would be a model this rule does not know: refused rather than guessed.
 */
export function stageRateMultipliers(model: BoatModel, lrMult: number): Record<string, number> {
  const groups = groupMultipliers(lrMult);
  const stageOf = new Map<string, number>();
  for (const w of model.backbone.trainableWeights) {
    const stage = resnetStage(w.name);
    if (stage === null) throw new Error(`backbone weight ${w.name} is in no ResNet stage`);
    stageOf.set((w.read() as tf.Variable).name, stage);
  }
  return Object.fromEntries(
    model.trainableVariables().map((v) => {
      const stage = stageOf.get(v.name);
      return [v.name, stage === undefined ? groups.head : groups[`stage${stage}` as RateGroup]];
    }),
  );
}

/**
 * One optimizer step with each gradient scaled by its variable's multiplier (1 when absent). Takes
 * ownership of nothing: the caller disposes `grads`.
 */
export function applyScaledGradients(
  optimizer: tf.Optimizer,
  grads: tf.NamedTensorMap,
  multipliers?: Record<string, number>,
): void {
  if (!multipliers) {
    optimizer.applyGradients(grads);
    return;
  }
  const scaled: tf.NamedTensorMap = {};
  for (const [name, g] of Object.entries(grads)) {
    const k = multipliers[name] ?? 1;
    scaled[name] = k === 1 ? g : tf.mul(g, k);
  }
  try {
    optimizer.applyGradients(scaled);
  } finally {
    tf.dispose(
      Object.entries(scaled)
        .filter(([name, t]) => t !== grads[name])
        .map(([, t]) => t),
    );
  }
}
