/**
 * One deterministic run of what the CLI and notebooks do with a model, read back asynchronously so that
 * it runs unchanged on every backend: engine-webgpu.test.ts runs it on wasm in the test process and
 * on webgpu in a child (webgpu-child.ts), then compares the two.
 *
 * ResNet50 (pretrained, 32 px, the smallest input its five stride-2 stages take) runs only twice, since
 * a pass costs tens of seconds on a software Vulkan device: a fine-tune gradient of every variable at
 * batch 2, and the `boat predict` command on the saved fine-tuned model. BatchNorm frozen/training,
 * Grad-CAM and a few epochs on the demo set (through the loader's decode workers and the trainer) run
 * on a tiny conv net, where the same kernels cost milliseconds.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '../lib/engine/tf';

import {
  batchNormFrozen,
  batchNormTraining,
  createBoatModel,
  DataLoader,
  evalTransforms,
  gradCamTensor,
  ImageFolder,
  loadImage,
  LoaderSource,
  nllLoss,
  Random,
  saveBoatModel,
  trainModel,
} from '../lib';
import { main } from '../lib/cli/main';
import { tinyModel } from './tiny-model';

export const SIZE = 32;
export const GRAD_BATCH = 2;

export interface ScenarioResult {
  arrays: Record<string, Float32Array>;
  values: Record<string, unknown>;
  /** tf.memory().numTensors at named points: each phase must end where it started. */
  counts: Record<string, number>;
  seconds: Record<string, number>;
}

export function seededArray(n: number, seed: number): Float32Array {
  let s = seed * 9973 + 7;
  return Float32Array.from({ length: n }, () => {
    s = (s * 1103515245 + 12345) & 0x7fffffff;
    return s / 0x7fffffff - 0.5;
  });
}

async function read(t: tf.Tensor): Promise<Float32Array> {
  const v = Float32Array.from(await t.data());
  t.dispose();
  return v;
}

async function capture(run: () => Promise<number>): Promise<{ code: number; stdout: string }> {
  const lines: string[] = [];
  const log = console.log;
  console.log = (...args: unknown[]) => lines.push(args.join(' '));
  try {
    return { code: await run(), stdout: lines.join('\n') };
  } finally {
    console.log = log;
  }
}

export async function runScenario(work: string, demoRoot: string): Promise<ScenarioResult> {
  const arrays: Record<string, Float32Array> = {};
  const values: Record<string, unknown> = {};
  const counts: Record<string, number> = {};
  const seconds: Record<string, number> = {};
  let t = Date.now();
  const lap = (name: string): void => {
    seconds[name] = (Date.now() - t) / 1000;
    t = Date.now();
    counts[name] = tf.memory().numTensors;
  };
  counts.start = tf.memory().numTensors;

  // 1. BatchNorm, training and frozen, forward and backward (the fused ops the fine-tune uses).
  {
    const x = tf.tensor4d(
      seededArray(3 * 4 * 5 * 6, 1).map((v) => v * 3 + 1),
      [3, 4, 5, 6],
    );
    const gamma = tf.tensor1d(seededArray(6, 2).map((v) => v + 1));
    const beta = tf.tensor1d(seededArray(6, 3));
    const mean = tf.tensor1d(seededArray(6, 4).map((v) => v + 1));
    const variance = tf.tensor1d(seededArray(6, 5).map((v) => v + 2));
    const probe = tf.tensor4d(seededArray(3 * 4 * 5 * 6, 6), [3, 4, 5, 6]);
    const training = (a: tf.Tensor, g: tf.Tensor, b: tf.Tensor): tf.Tensor => {
      const r = batchNormTraining(a, g as tf.Tensor1D, b as tf.Tensor1D, 1e-3);
      tf.dispose([r.mean, r.variance]);
      return r.y.mul(probe).sum();
    };
    const frozen = (a: tf.Tensor, g: tf.Tensor, b: tf.Tensor): tf.Tensor =>
      batchNormFrozen(a, g as tf.Tensor1D, b as tf.Tensor1D, mean, variance, 1e-3)
        .mul(probe)
        .sum();
    for (const [name, f] of [
      ['bnTraining', training],
      ['bnFrozen', frozen],
    ] as const) {
      const { value, grads } = tf.valueAndGrads(f)([x, gamma, beta]);
      arrays[`${name}.value`] = await read(value);
      for (const [i, g] of grads.entries()) arrays[`${name}.grad${i}`] = await read(g);
    }
    tf.dispose([x, gamma, beta, mean, variance, probe]);
    lap('batchNorm');
  }

  // 2. A tiny fine-tune with BatchNorm in training mode, then frozen: gradients and moving statistics.
  {
    const model = tinyModel();
    const x = tf.tensor4d(
      seededArray(2 * 8 * 8 * 3, 7).map((v) => v * 100),
      [2, 8, 8, 3],
    );
    const y = tf.tensor1d([0, 2], 'int32');
    for (const frozen of [false, true]) {
      model.batchNormFrozen = frozen;
      const { value, grads } = tf.variableGrads(() => nllLoss(model.forward(x, true), y), model.trainableVariables());
      const tag = frozen ? 'tinyFrozen' : 'tinyTraining';
      arrays[`${tag}.loss`] = await read(value);
      // By position: variable names get suffixes that depend on what the process created before.
      for (const [i, v] of model.trainableVariables().entries()) arrays[`${tag}.grad.${i}`] = await read(grads[v.name]);
      const bn = model.backbone.layers.find((l) => l.getClassName() === 'BatchNormalization')!;
      const [, , movingMean, movingVariance] = bn.getWeights();
      arrays[`${tag}.movingMean`] = await read(movingMean.clone());
      arrays[`${tag}.movingVariance`] = await read(movingVariance.clone());
    }
    // Grad-CAM over the tiny net's last conv maps (8×8), for class 1.
    const one = tf.tensor4d(
      seededArray(8 * 8 * 3, 8).map((v) => v * 100),
      [1, 8, 8, 3],
    );
    const cam = await gradCamTensor(model, one, 1);
    arrays['gradcam.heatmap'] = cam.heatmap;
    arrays['gradcam.probs'] = cam.probs;
    values['gradcam.size'] = cam.size;
    tf.dispose([x, y, one]);
    model.dispose();
    lap('tiny');
  }

  // 3. A few SGD epochs of the tiny net on the demo set (8 px), through the loader's decode workers and the trainer.
  {
    const model = tinyModel({ classes: 5 });
    const loader = new DataLoader(new ImageFolder(demoRoot, evalTransforms('caffe', 8)), { batchSize: 5 });
    const trained = await trainModel(
      model,
      { train: new LoaderSource(loader), val: new LoaderSource(loader) },
      { epochs: 4, optimizer: 'sgd', lr: 0.01, momentum: 0.9, seed: 1 },
    );
    values.trainLoss = trained.history.filter((r) => r.phase === 'train').map((r) => r.loss);
    values.valLoss = trained.history.filter((r) => r.phase === 'val').map((r) => r.loss);
    model.dispose();
    lap('demoTraining');
  }

  // 4. ResNet50 fine-tune at batch 2: the gradient of every variable (BatchNorm in training mode), one SGD step, save.
  const transform = evalTransforms('caffe', SIZE);
  const folder = new ImageFolder(demoRoot, transform);
  const model = await createBoatModel({ classes: folder.classes, mode: 'finetune', inputSize: SIZE, seed: 3 });
  lap('load');
  const files = folder.samples.slice(0, GRAD_BATCH);
  const images = await Promise.all(files.map((f) => loadImage(f.file, transform, new Random(0))));
  const x = tf.tensor4d(Float32Array.from(images.flatMap((im) => Array.from(im.data))), [GRAD_BATCH, SIZE, SIZE, 3]);
  const y = tf.tensor1d(
    files.map((f) => f.label),
    'int32',
  );
  const variables = model.trainableVariables();
  const { value, grads } = tf.variableGrads(() => nllLoss(model.forward(x, true), y), variables);
  arrays['finetune.loss'] = await read(value.clone());
  values['finetune.variables'] = variables.map((v) => v.name);
  for (const [i, v] of variables.entries())
    arrays[`finetune.grad.${i}`] = Float32Array.from(await grads[v.name].data());
  for (const layer of ['bn_conv1', 'bn5c_branch2c']) {
    const [, , movingMean, movingVariance] = model.backbone.getLayer(layer).getWeights();
    arrays[`finetune.${layer}.movingMean`] = await read(movingMean.clone());
    arrays[`finetune.${layer}.movingVariance`] = await read(movingVariance.clone());
  }
  const sgd = tf.train.sgd(0.01);
  sgd.applyGradients(grads);
  sgd.dispose();
  tf.dispose([value, x, y, ...Object.values(grads)]);
  const saved = path.join(work, 'model');
  await saveBoatModel(model, saved);
  values.saved = saved;
  model.dispose();
  lap('finetune');

  // 5. `boat predict --json` on the saved model, in this process (so on this process' backend): every class' probability.
  const predicted = await capture(() =>
    main(['predict', '--model', saved, files[0].file, '--json', '--top', String(folder.classes.length)]),
  );
  values.predictCode = predicted.code;
  values.predict = JSON.parse(predicted.stdout);
  lap('predict');
  return { arrays, values, counts, seconds };
}

/** Writes a result as result.json plus one float32 file. */
export function writeResult(dir: string, r: ScenarioResult): void {
  const index: Record<string, [number, number]> = {};
  let offset = 0;
  for (const [k, a] of Object.entries(r.arrays)) {
    index[k] = [offset, a.length];
    offset += a.length;
  }
  const all = new Float32Array(offset);
  for (const [k, a] of Object.entries(r.arrays)) all.set(a, index[k][0]);
  fs.writeFileSync(path.join(dir, 'arrays.f32'), Buffer.from(all.buffer));
  fs.writeFileSync(
    path.join(dir, 'result.json'),
    JSON.stringify({ index, values: r.values, counts: r.counts, seconds: r.seconds }),
  );
}

export function readResult(dir: string): ScenarioResult {
  const { index, values, counts, seconds } = JSON.parse(fs.readFileSync(path.join(dir, 'result.json'), 'utf8'));
  const buf = fs.readFileSync(path.join(dir, 'arrays.f32'));
  const all = new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
  const arrays: Record<string, Float32Array> = {};
  for (const [k, [o, n]] of Object.entries(index as Record<string, [number, number]>)) arrays[k] = all.slice(o, o + n);
  return { arrays, values, counts, seconds };
}
