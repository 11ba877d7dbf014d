/**
 * MixUp and CutMix of training batches, as torchvision.transforms.v2.MixUp / CutMix define them (and as
 * its reference training scripts apply them, RandomChoice([MixUp, CutMix]) when both are on): each image
 * is mixed with the previous one in the batch (torch.roll by 1), and the loss is the original mixup
 * code's mixup_criterion, λ·loss(y) + (1 − λ)·loss(y rolled).
 *
 * Every draw comes from a generator the caller derives from (seed, epoch, step), so a resumed run
 * mixes exactly as an uninterrupted one.
 */
import * as tf from '../engine/tf';

import { nllLoss, TrainingMode } from '../model';
import { Random, UserError } from '../util';

export interface MixingOptions {
  /** MixUp's α: λ ~ Beta(α, α); 0 is off. */
  mixupAlpha: number;
  /** CutMix's α: λ ~ Beta(α, α) sizes the pasted box; 0 is off. */
  cutmixAlpha: number;
}

/** Which mixing a batch gets: λ is the original images' share (for CutMix, of the pixels, after clamping). */
export type MixPlan =
  | { kind: 'mixup'; lambda: number }
  | { kind: 'cutmix'; lambda: number; box: { x1: number; y1: number; x2: number; y2: number } };

/** A mixed batch: new tensors, the caller's to dispose (dispose()); y itself stays the caller's. */
export interface MixedBatch {
  plan: MixPlan;
  x: tf.Tensor4D;
  /** The labels of the images mixed in: y rolled by 1. */
  rolled: tf.Tensor1D;
  dispose(): void;
}

/** Refuses an α that is not a finite number ≥ 0 (`flag` names it as the CLI spells it). */
function checkMixAlpha(flag: string, alpha: number): void {
  if (!(typeof alpha === 'number' && Number.isFinite(alpha) && alpha >= 0))
    throw new UserError(`${flag} must be a finite number of at least 0 (0: off), got ${String(alpha)}`);
}

/** Each option's flag, as the CLI spells it. */
const FLAGS: Record<keyof MixingOptions, string> = { mixupAlpha: '--mixup-alpha', cutmixAlpha: '--cutmix-alpha' };

/**
 * Both α from options that may leave them out (0: off), each checked. With `mode`, mixing is refused for a
 * feature extractor, naming the flags given: its inputs are cached features, not images.
 */
export function resolveMixing(given: Partial<MixingOptions>, mode?: TrainingMode): MixingOptions {
  const m: MixingOptions = { mixupAlpha: given.mixupAlpha ?? 0, cutmixAlpha: given.cutmixAlpha ?? 0 };
  const keys = Object.keys(FLAGS) as Array<keyof MixingOptions>;
  for (const key of keys) checkMixAlpha(FLAGS[key], m[key]);
  const on = keys.filter((key) => m[key] > 0);
  if (mode !== undefined && mode !== 'finetune' && on.length > 0)
    throw new UserError(
      `${on.map((key) => FLAGS[key]).join(' and ')} mix${on.length > 1 ? '' : 'es'} images: ${on.length > 1 ? 'they apply' : 'it applies'} to --mode finetune (and stage 2 of --recipe two-stage) only, not to cached features`,
    );
  return m;
}

export function mixingOn(m: MixingOptions): boolean {
  return m.mixupAlpha > 0 || m.cutmixAlpha > 0;
}

/** The line a run logs when mixing is on, so that its log says what it trained on. */
export function mixingLine(m: MixingOptions): string {
  const parts = [
    ...(m.mixupAlpha > 0 ? [`MixUp (alpha ${m.mixupAlpha})`] : []),
    ...(m.cutmixAlpha > 0 ? [`CutMix (alpha ${m.cutmixAlpha})`] : []),
  ];
  const which = parts.length > 1 ? `${parts.join(' or ')}, one chosen at random per batch` : parts[0];
  return `batch mixing: ${which}, as torchvision's transforms.v2; loss λ·NLL(y) + (1 − λ)·NLL(y of the mixed-in image), train accuracy against the larger share; val unmixed`;
}

/** A standard normal draw (Box–Muller), from the project's generator. */
function normal(rng: Random): number {
  const u = 1 - rng.next(); // (0, 1]: log(0) is never taken
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rng.next());
}

/**
 * log of a Gamma(a, 1) draw: Marsaglia and Tsang's method, with the boost Gamma(a) = Gamma(a + 1)·U^(1/a)
 * for a < 1. In logs because for small a that U^(1/a) underflows to 0, and Beta would then be 0/0.
 */
export function logGamma(rng: Random, a: number): number {
  if (a < 1) return logGamma(rng, a + 1) + Math.log(1 - rng.next()) / a;
  const d = a - 1 / 3;
  const c = 1 / Math.sqrt(9 * d);
  for (;;) {
    const z = normal(rng);
    const v = Math.pow(1 + c * z, 3);
    if (v <= 0) continue;
    const u = 1 - rng.next();
    if (Math.log(u) < 0.5 * z * z + d - d * v + d * Math.log(v)) return Math.log(d * v);
  }
}

/**
 * A Beta(a, a) draw, X / (X + Y) for X, Y ~ Gamma(a). Written here rather than taken from a statistics
 * package because it must draw from the project's seeded generator, whose state a checkpoint can rebuild.
 */
export function sampleBeta(rng: Random, a: number): number {
  const [lx, ly] = [logGamma(rng, a), logGamma(rng, a)];
  return 1 / (1 + Math.exp(ly - lx));
}

/**
 * CutMix's box as torchvision computes it (CutMix._get_params): half-sizes int(r·W), int(r·H) for
 * r = 0.5·√(1 − λ) around the centre (rx, ry), clamped to the image; λ becomes 1 − box area / (W·H).
 */
export function cutmixBox(
  lambda: number,
  rx: number,
  ry: number,
  height: number,
  width: number,
): Extract<MixPlan, { kind: 'cutmix' }> {
  const r = 0.5 * Math.sqrt(1 - lambda);
  const [halfW, halfH] = [Math.trunc(r * width), Math.trunc(r * height)];
  const box = {
    x1: Math.max(rx - halfW, 0),
    y1: Math.max(ry - halfH, 0),
    x2: Math.min(rx + halfW, width),
    y2: Math.min(ry + halfH, height),
  };
  return { kind: 'cutmix', lambda: 1 - ((box.x2 - box.x1) * (box.y2 - box.y1)) / (width * height), box };
}

/**
 * The mixing of one batch of height × width images, or null when both are off (then nothing is drawn).
 * Draws in torchvision's order: the choice between the two (when both are on), λ, then the box centre
 * (torch.randint(W), torch.randint(H)).
 */
export function drawMix(rng: Random, m: MixingOptions, height: number, width: number): MixPlan | null {
  if (!mixingOn(m)) return null;
  // RandomChoice([MixUp, CutMix]) with equal odds when both are on.
  const both = m.mixupAlpha > 0 && m.cutmixAlpha > 0;
  const kind = both ? (rng.next() < 0.5 ? 'mixup' : 'cutmix') : m.mixupAlpha > 0 ? 'mixup' : 'cutmix';
  if (kind === 'mixup') return { kind, lambda: sampleBeta(rng, m.mixupAlpha) };
  const lambda = sampleBeta(rng, m.cutmixAlpha);
  return cutmixBox(lambda, rng.int(0, width - 1), rng.int(0, height - 1), height, width);
}

/** torch.roll(t, 1, 0): sample i becomes sample i − 1's, the first the last's. */
export function rollBatch<T extends tf.Tensor>(t: T): T {
  const n = t.shape[0];
  if (n <= 1) return t.clone();
  return tf.tidy(() => tf.concat<T>([tf.slice(t, n - 1, 1), tf.slice(t, 0, n - 1)]));
}

/** Applies `plan` to images x [n, h, w, c] and labels y. */
export function mixBatch(x: tf.Tensor4D, y: tf.Tensor1D, plan: MixPlan): MixedBatch {
  const [mixed, rolled] = tf.tidy(() => {
    const other = rollBatch(x);
    if (plan.kind === 'mixup')
      return [tf.add<tf.Tensor4D>(tf.mul(x, plan.lambda), tf.mul(other, 1 - plan.lambda)), rollBatch(y)];
    // A 0/1 mask of the box: x·(1 − mask) + other·mask is x outside the box and other inside, exactly.
    const [, h, w] = x.shape;
    const { x1, y1, x2, y2 } = plan.box;
    const inside = tf.buffer([1, h, w, 1], 'float32');
    for (let row = y1; row < y2; row++) for (let col = x1; col < x2; col++) inside.set(1, 0, row, col, 0);
    const mask = inside.toTensor();
    return [tf.add<tf.Tensor4D>(tf.mul(x, tf.sub(1, mask)), tf.mul(other, mask)), rollBatch(y)];
  });
  return { plan, x: mixed, rolled, dispose: () => tf.dispose([mixed, rolled]) };
}

/** The batch of this (seed, epoch, step) mixed, or null when mixing is off or the inputs are not images. */
export function mixForStep(
  m: MixingOptions & { seed: number },
  epoch: number,
  step: number,
  x: tf.Tensor,
  y: tf.Tensor1D,
): MixedBatch | null {
  if (!mixingOn(m)) return null;
  if (x.rank !== 4) throw new UserError('MixUp and CutMix mix images: they cannot apply to cached features');
  const [, h, w] = x.shape;
  const plan = drawMix(Random.derive(m.seed, 'mixup', epoch, step), m, h, w)!;
  return mixBatch(x as tf.Tensor4D, y, plan);
}

/**
 * The training loss of a batch: nllLoss on y, or, mixed, mixup_criterion's λ·nllLoss(y) + (1 − λ)·nllLoss(y
 * rolled). With class weights each term is divided by the sum of its own labels' weights.
 */
export function mixedNllLoss(
  logProbs: tf.Tensor2D,
  y: tf.Tensor1D,
  mixed: MixedBatch | null,
  classWeights?: readonly number[],
  labelSmoothing = 0,
): tf.Scalar {
  if (!mixed) return nllLoss(logProbs, y, classWeights, labelSmoothing);
  const { lambda } = mixed.plan;
  return tf.tidy(() =>
    tf.add<tf.Scalar>(
      tf.mul(nllLoss(logProbs, y, classWeights, labelSmoothing), lambda),
      tf.mul(nllLoss(logProbs, mixed.rolled, classWeights, labelSmoothing), 1 - lambda),
    ),
  );
}

/** The labels train accuracy counts against: for a mixed batch, those with the larger share (y on a tie). */
export function majorityLabels(y: tf.Tensor1D, mixed: MixedBatch | null): tf.Tensor1D {
  return mixed && mixed.plan.lambda < 0.5 ? mixed.rolled : y;
}
