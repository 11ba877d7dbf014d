/**
 * MixUp and CutMix (torchvision.transforms.v2 semantics): the batch mixing and CutMix's box against hand
 * computations, the Beta sampler's moments, the mixed loss, and the training loop with them on a tiny
 * network (cpu backend): deterministic, exactly resumable, no tensor left behind.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { before, test } from 'node:test';
import * as tf from '../lib/engine/tf';

import {
  BatchSource,
  cutmixBox,
  drawMix,
  majorityLabels,
  mixBatch,
  mixedNllLoss,
  mixForStep,
  Random,
  sampleBeta,
  selectBackend,
  trainModel,
  TrainOptions,
  UserError,
} from '../lib';
import { tempDir } from './helpers';
import { ColourSource, tinyModel, weightsOf } from './tiny-model';

before(async () => {
  await selectBackend('cpu');
});

/** Values of a [n, h, w, c] batch as nested arrays, for hand comparisons. */
function pixels(t: tf.Tensor): number[][][][] {
  return t.arraySync() as number[][][][];
}

/** A batch of n images h × w × c with distinct values, pixel (i, r, col, ch) = 1000·i + 100·r + 10·col + ch. */
function handBatch(n: number, h: number, w: number, c: number): tf.Tensor4D {
  const values = Array.from({ length: n }, (_, i) =>
    Array.from({ length: h }, (_, r) =>
      Array.from({ length: w }, (_, col) => Array.from({ length: c }, (_, ch) => 1000 * i + 100 * r + 10 * col + ch)),
    ),
  );
  return tf.tensor4d(values);
}

test('MixUp: x becomes λ·x + (1 − λ)·x rolled by one (torch.roll), for the λ drawn; labels roll the same way', () => {
  const before = tf.memory().numTensors;
  const x = handBatch(3, 2, 2, 3);
  const y = tf.tensor1d([0, 1, 2], 'int32');
  const plan = drawMix(new Random(5), { mixupAlpha: 0.4, cutmixAlpha: 0 }, 2, 2)!;
  assert.equal(plan.kind, 'mixup');
  // The same generator draws λ as Beta(0.4, 0.4) and nothing else.
  assert.equal(plan.lambda, sampleBeta(new Random(5), 0.4));
  assert.ok(plan.lambda > 0 && plan.lambda < 1);
  const mixed = mixBatch(x, y, plan);
  const src = pixels(x);
  const got = pixels(mixed.x);
  const lam = plan.lambda;
  for (let i = 0; i < 3; i++) {
    const prev = (i + 2) % 3; // sample i is mixed with sample i − 1, the first with the last
    for (let r = 0; r < 2; r++)
      for (let col = 0; col < 2; col++)
        for (let ch = 0; ch < 3; ch++) {
          const want = lam * src[i][r][col][ch] + (1 - lam) * src[prev][r][col][ch];
          assert.ok(
            Math.abs(got[i][r][col][ch] - want) < 1e-3,
            `(${i},${r},${col},${ch}): ${got[i][r][col][ch]} vs ${want}`,
          );
        }
  }
  assert.deepEqual(Array.from(mixed.rolled.dataSync()), [2, 0, 1]);
  mixed.dispose();
  tf.dispose([x, y]);
  assert.equal(tf.memory().numTensors, before);
});

test("CutMix's box is torchvision's: half-sizes int(r·W), int(r·H) for r = 0.5·√(1 − λ), clamped; λ = 1 − area/(W·H)", () => {
  // λ 0.64, centre (1, 3) in a 4 × 5 image: r = 0.3, half-sizes int(1.5) = 1 and int(1.2) = 1, so x 0..2, y 2..4.
  assert.deepEqual(cutmixBox(0.64, 1, 3, 4, 5), {
    kind: 'cutmix',
    lambda: 1 - 4 / 20,
    box: { x1: 0, y1: 2, x2: 2, y2: 4 },
  });
  // λ 0, centre (4, 3): r = 0.5, half-sizes 2 and 2; clamped to x 2..5, y 1..4: 9 of 20 pixels.
  assert.deepEqual(cutmixBox(0, 4, 3, 4, 5), { kind: 'cutmix', lambda: 0.55, box: { x1: 2, y1: 1, x2: 5, y2: 4 } });
  // λ near 1: a box too small to hold a pixel, λ 1 (nothing pasted).
  assert.equal(cutmixBox(0.99, 2, 2, 4, 5).lambda, 1);
  // drawMix draws in torchvision's order: λ ~ Beta(α, α), then the centre x in [0, W), then y in [0, H).
  const rng = new Random(11);
  const lambda = sampleBeta(rng, 1);
  const [rx, ry] = [rng.int(0, 4), rng.int(0, 3)];
  assert.deepEqual(drawMix(new Random(11), { mixupAlpha: 0, cutmixAlpha: 1 }, 4, 5), cutmixBox(lambda, rx, ry, 4, 5));
});

test('CutMix pastes exactly the box from the rolled batch and leaves every other pixel as it was', () => {
  const before = tf.memory().numTensors;
  const x = handBatch(2, 4, 5, 2);
  const y = tf.tensor1d([1, 0], 'int32');
  const plan = cutmixBox(0.3, 3, 1, 4, 5); // r ≈ 0.418: half-sizes 2 and 1, box x 1..5, y 0..2
  assert.deepEqual(plan.box, { x1: 1, y1: 0, x2: 5, y2: 2 });
  assert.equal(plan.lambda, 1 - 8 / 20);
  const mixed = mixBatch(x, y, plan);
  const [src, got] = [pixels(x), pixels(mixed.x)];
  let pasted = 0;
  for (let i = 0; i < 2; i++)
    for (let r = 0; r < 4; r++)
      for (let col = 0; col < 5; col++) {
        const inside = col >= 1 && col < 5 && r >= 0 && r < 2;
        if (inside && i === 0) pasted++;
        const from = inside ? 1 - i : i;
        assert.deepEqual(got[i][r][col], src[from][r][col], `(${i},${r},${col})`);
      }
  assert.equal(pasted / 20, 1 - plan.lambda, 'the pasted share is 1 − λ');
  assert.deepEqual(Array.from(mixed.rolled.dataSync()), [0, 1]);
  mixed.dispose();
  tf.dispose([x, y]);
  assert.equal(tf.memory().numTensors, before);
});

test('the Beta(α, α) sampler: mean 1/2 and variance 1/(4(2α + 1)) within 5 standard errors, in [0, 1], the same for a seed', () => {
  const n = 20000;
  for (const alpha of [0.2, 1, 0.02]) {
    const rng = new Random(3);
    const draws = Array.from({ length: n }, () => sampleBeta(rng, alpha));
    assert.ok(
      draws.every((d) => d >= 0 && d <= 1 && Number.isFinite(d)),
      `alpha ${alpha}: a draw outside [0, 1]`,
    );
    const mean = draws.reduce((s, d) => s + d, 0) / n;
    const sq = draws.map((d) => (d - 0.5) ** 2);
    const variance = sq.reduce((s, d) => s + d, 0) / n; // about the known mean 1/2
    const wantVar = 1 / (4 * (2 * alpha + 1));
    // Standard errors from the sample itself: sd/√n for the mean, sd of (d − 1/2)² / √n for the variance.
    const seMean = Math.sqrt(variance / n);
    const seVar = Math.sqrt(sq.reduce((s, d) => s + (d - variance) ** 2, 0) / n / n);
    assert.ok(Math.abs(mean - 0.5) < 5 * seMean, `alpha ${alpha}: mean ${mean} (se ${seMean})`);
    assert.ok(
      Math.abs(variance - wantVar) < 5 * seVar,
      `alpha ${alpha}: variance ${variance} vs ${wantVar} (se ${seVar})`,
    );
    const again = new Random(3);
    assert.deepEqual(
      Array.from({ length: 50 }, () => sampleBeta(again, alpha)),
      draws.slice(0, 50),
    );
  }
  // Beta(1, 1) is uniform: a quarter of the draws below 1/4 (binomial standard error √(pq/n)).
  const rng = new Random(8);
  const below = Array.from({ length: n }, () => sampleBeta(rng, 1)).filter((d) => d < 0.25).length / n;
  assert.ok(Math.abs(below - 0.25) < 5 * Math.sqrt((0.25 * 0.75) / n), `share below 1/4: ${below}`);
});

test("the mixed loss is mixup_criterion's λ·NLL(y) + (1 − λ)·NLL(y rolled), with class weights and label smoothing (hand-computed)", () => {
  const before = tf.memory().numTensors;
  const p = [
    [0.7, 0.2, 0.1],
    [0.1, 0.6, 0.3],
    [0.25, 0.25, 0.5],
    [0.3, 0.3, 0.4],
  ];
  const labels = [0, 1, 2, 1];
  const rolledLabels = [1, 0, 1, 2];
  const w = [0.5, 2, 1];
  // PyTorch's CrossEntropyLoss(weight=w, label_smoothing=s) on log-probabilities, in plain numbers.
  const ce = (ys: number[], weights: readonly number[] | undefined, s: number): number => {
    const wOf = (c: number): number => (weights ? weights[c] : 1);
    const denominator = ys.reduce((sum, c) => sum + wOf(c), 0);
    const nll = ys.reduce((sum, c, i) => sum - wOf(c) * Math.log(p[i][c]), 0) / denominator;
    const uniform = p.reduce((sum, row) => sum - row.reduce((t, q, c) => t + wOf(c) * Math.log(q), 0), 0) / denominator;
    return (1 - s) * nll + (s / 3) * uniform;
  };
  const logProbs = tf.tidy(() => tf.log<tf.Tensor2D>(tf.tensor2d(p)));
  const y = tf.tensor1d(labels, 'int32');
  const x = tf.zeros<tf.Rank.R4>([4, 2, 2, 1]);
  const mixed = mixBatch(x, y, { kind: 'mixup', lambda: 0.3 });
  assert.deepEqual(Array.from(mixed.rolled.dataSync()), rolledLabels);
  for (const [weights, s] of [
    [undefined, 0],
    [w, 0],
    [undefined, 0.1],
    [w, 0.2],
  ] as const) {
    const want = 0.3 * ce(labels, weights, s) + 0.7 * ce(rolledLabels, weights, s);
    const loss = mixedNllLoss(logProbs, y, mixed, weights, s);
    const got = loss.dataSync()[0];
    loss.dispose();
    assert.ok(Math.abs(got - want) < 1e-6, `weights ${String(weights)}, smoothing ${s}: ${got} vs ${want}`);
  }
  // Unmixed it is the plain loss.
  const plain = mixedNllLoss(logProbs, y, null, w, 0.2);
  assert.ok(Math.abs(plain.dataSync()[0] - ce(labels, w, 0.2)) < 1e-6);
  plain.dispose();
  mixed.dispose();
  tf.dispose([logProbs, y, x]);
  assert.equal(tf.memory().numTensors, before);
});

const strip = (rows: Array<{ seconds: number; imagesPerSecond: number }>): unknown[] =>
  rows.map(({ seconds: _s, imagesPerSecond: _i, ...r }) => r);

test('the loop trains on the mixed batch and the mixed loss, drawn from (seed, epoch, step); train accuracy counts the larger share', async () => {
  const model = tinyModel({ mode: 'finetune' });
  const source = new ColourSource(6, { brightness: 40, ramp: true });
  // Trained a little first, so that its predictions follow the image with the larger share.
  await trainModel(
    model,
    { train: source, val: new ColourSource(6, { brightness: 40, ramp: true }) },
    { epochs: 4, lr: 0.05 },
  );
  const m = { mixupAlpha: 0.4, cutmixAlpha: 1, seed: 4 };
  // What the first epoch's train phase should report, computed batch by batch before any step (a vanishing rate).
  let [lossSum, correct, correctOfY, step, cutmixes] = [0, 0, 0, 0, 0];
  for await (const { x, y } of source.batches(0)) {
    const mixed = mixForStep(m, 0, step++, x, y)!;
    if (mixed.plan.kind === 'cutmix') cutmixes++;
    const [loss, hits, hitsOfY] = tf.tidy(() => {
      const logProbs = model.forward(mixed.x, true);
      const counted = mixed.plan.lambda < 0.5 ? mixed.rolled : y;
      const predicted = tf.argMax(logProbs, 1);
      return [
        mixedNllLoss(logProbs, y, mixed, undefined, 0),
        tf.sum(tf.equal(predicted, counted)),
        tf.sum(tf.equal(predicted, y)),
      ];
    });
    lossSum += loss.dataSync()[0] * y.shape[0];
    correct += hits.dataSync()[0];
    correctOfY += hitsOfY.dataSync()[0];
    tf.dispose([loss, hits, hitsOfY, x, y]);
    mixed.dispose();
  }
  assert.ok(cutmixes > 0 && cutmixes < 4, `both kinds drawn over the 4 batches (${cutmixes} CutMix)`);
  const r = await trainModel(
    model,
    { train: source, val: new ColourSource(6, { brightness: 40, ramp: true }) },
    { epochs: 1, lr: 1e-30, ...m },
  );
  assert.ok(Math.abs(r.history[0].loss - lossSum / 24) < 1e-5, `train loss ${r.history[0].loss} vs ${lossSum / 24}`);
  assert.equal(r.history[0].acc, correct / 24);
  assert.ok(
    correct > correctOfY,
    `counted against the larger share ${correct}, against y ${correctOfY}: they must differ here`,
  );
  model.dispose();
});

test('training with MixUp and CutMix: the same for a seed, resumes exactly, leaks no tensors; a resume with another alpha is refused', async () => {
  const dir = tempDir();
  const data = (): { train: BatchSource; val: BatchSource } => ({
    train: new ColourSource(6, { brightness: 40, ramp: true }),
    val: new ColourSource(6, { brightness: 40, ramp: true }),
  });
  const options: TrainOptions = { epochs: 3, lr: 0.05, seed: 3, mixupAlpha: 0.2, cutmixAlpha: 1 };
  const runs: unknown[][] = [];
  for (const extra of [{}, {}, { mixupAlpha: 0, cutmixAlpha: 0 }] as TrainOptions[]) {
    const model = tinyModel({ mode: 'finetune', dropout: 0.4 });
    const counts: number[] = [];
    const r = await trainModel(model, data(), {
      ...options,
      ...extra,
      onPhase: (row) => row.phase === 'val' && counts.push(tf.memory().numTensors),
    });
    assert.equal(new Set(counts).size, 1, `numTensors after each epoch: ${counts}`);
    runs.push([...strip(r.history), ...(await weightsOf(model))]);
    model.dispose();
  }
  assert.deepEqual(runs[1], runs[0], 'two runs with one seed are identical');
  assert.notDeepEqual(runs[2], runs[0], 'mixing changes the run');

  // Interrupted after the first epoch, then resumed into a fresh model: the uninterrupted run exactly.
  const checkpointDir = path.join(dir, 'checkpoint');
  const first = tinyModel({ mode: 'finetune', dropout: 0.4 });
  const part = await trainModel(first, data(), { ...options, checkpointDir, shouldStop: () => true });
  assert.equal(part.history.length, 2);
  first.dispose();
  const resumed = tinyModel({ mode: 'finetune', dropout: 0.4 });
  await assert.rejects(trainModel(resumed, data(), { ...options, checkpointDir, resume: true, cutmixAlpha: 0.5 }), {
    message: /^cannot resume from .*: cutmix-alpha 0\.5 \(checkpoint: 1\); resume with the checkpoint's settings/,
  });
  await assert.rejects(
    trainModel(resumed, data(), { ...options, checkpointDir, resume: true, mixupAlpha: undefined }),
    {
      message: /: mixup-alpha 0 \(checkpoint: 0\.2\)/,
    },
  );
  const rest = await trainModel(resumed, data(), { ...options, checkpointDir, resume: true });
  assert.deepEqual([...strip(rest.history), ...(await weightsOf(resumed))], runs[0]);
  // A checkpoint written before the options existed trained without them: it resumes with 0 only.
  const stateFile = path.join(checkpointDir, 'state.json');
  const state = JSON.parse(fs.readFileSync(stateFile, 'utf8')) as { settings: Record<string, unknown> };
  for (const k of ['mixup-alpha', 'cutmix-alpha']) delete state.settings[k];
  fs.writeFileSync(stateFile, JSON.stringify(state));
  const plain = { ...options, epochs: 4, checkpointDir, resume: true, mixupAlpha: 0, cutmixAlpha: 0 };
  await assert.rejects(trainModel(resumed, data(), { ...plain, cutmixAlpha: 1 }), {
    message: /: cutmix-alpha 1 \(checkpoint: 0\)/,
  });
  assert.equal((await trainModel(resumed, data(), plain)).history.length, 8);
  resumed.dispose();
});

test('train accuracy counts the label with the larger share: y for λ ≥ 1/2, the rolled labels below', () => {
  const [x, y] = [tf.zeros<tf.Rank.R4>([3, 2, 2, 1]), tf.tensor1d([0, 1, 2], 'int32')];
  for (const [lambda, want] of [
    [0.7, [0, 1, 2]],
    [0.5, [0, 1, 2]],
    [0.3, [2, 0, 1]],
  ] as const) {
    const mixed = mixBatch(x, y, { kind: 'mixup', lambda });
    assert.deepEqual(Array.from(majorityLabels(y, mixed).dataSync()), want, `λ ${lambda}`);
    mixed.dispose();
  }
  assert.equal(majorityLabels(y, null), y);
  tf.dispose([x, y]);
});

test('bad alphas, and mixing with a feature extractor, are refused with one-line errors', async () => {
  const model = tinyModel({ mode: 'finetune' });
  const data = {
    train: new ColourSource(6, { brightness: 40, ramp: true }),
    val: new ColourSource(6, { brightness: 40, ramp: true }),
  };
  for (const [key, flag] of [
    ['mixupAlpha', '--mixup-alpha'],
    ['cutmixAlpha', '--cutmix-alpha'],
  ] as const)
    for (const bad of [-0.1, NaN, Infinity])
      await assert.rejects(trainModel(model, data, { epochs: 1, [key]: bad }), (err: Error) => {
        assert.ok(err instanceof UserError);
        assert.equal(err.message, `${flag} must be a finite number of at least 0 (0: off), got ${String(bad)}`);
        return true;
      });
  model.dispose();
  const head = tinyModel({ mode: 'feature-extractor' });
  await assert.rejects(trainModel(head, data, { epochs: 1, cutmixAlpha: 1 }), (err: Error) => {
    assert.ok(err instanceof UserError);
    assert.match(err.message, /^MixUp and CutMix mix images: they apply to fine-tuning only, not to cached features$/);
    return true;
  });
  head.dispose();
});
