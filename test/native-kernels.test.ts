/**
 * The native kernels (native/boat_native.cc through lib/engine/native-kernels.ts) against tfjs' cpu
 * backend and against the wasm-only kernels they replace: convolutions and their gradients (oneDNN),
 * BatchNorm in inference and training, MaxPoolGrad, then a whole ResNet50 forward pass and train step.
 * Every test is a reported skip when the addon is not built.
 */
import assert from 'node:assert/strict';
import { before, test, type TestContext } from 'node:test';
import * as tf from '../lib/engine/tf';

import {
  batchNormTraining,
  createBoatModel,
  loadNativeAddon,
  nativeKernelsInUse,
  nllLoss,
  selectBackend,
  setNativeKernels,
} from '../lib';
import { skipRestUnlessCi } from './helpers';

let available = false;

before(async () => {
  const backend = await selectBackend();
  assert.equal(backend.name, 'wasm');
  available = nativeKernelsInUse() !== null;
});

function skipWithoutAddon(t: TestContext): boolean {
  if (available) return false;
  const loaded = loadNativeAddon();
  // Turned off on purpose (BOAT_NATIVE=0) is a plain skip; not built is one only outside CI.
  if ('reason' in loaded && loaded.reason === 'BOAT_NATIVE=0') {
    t.skip('native addon turned off (BOAT_NATIVE=0)');
    return true;
  }
  return skipRestUnlessCi(t, `native addon not available: ${'reason' in loaded ? loaded.reason : 'turned off'}`);
}

function randomArray(shape: number[], seed: number, offset = 0): Float32Array {
  let s = seed * 7919 + 3;
  return Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => {
    s = (s * 1103515245 + 12345) & 0x7fffffff;
    return s / 0x7fffffff - 0.5 + offset;
  });
}

function maxRelativeError(expected: ArrayLike<number>, actual: ArrayLike<number>): number {
  assert.equal(actual.length, expected.length);
  let scale = 0;
  let err = 0;
  for (let i = 0; i < expected.length; i++) scale = Math.max(scale, Math.abs(expected[i]));
  for (let i = 0; i < expected.length; i++) err = Math.max(err, Math.abs(expected[i] - actual[i]));
  return err / scale;
}

/** Runs `f` on the cpu backend and on wasm with native kernels; returns both results as arrays. */
async function onCpuAndNative(f: () => tf.Tensor[]): Promise<[Float32Array[], Float32Array[]]> {
  const run = async (backend: string): Promise<Float32Array[]> => {
    await tf.setBackend(backend);
    const before = tf.memory().numTensors;
    const out = tf.tidy(f);
    const values = out.map((t) => t.dataSync() as Float32Array);
    tf.dispose(out);
    assert.equal(tf.memory().numTensors, before, `tensors leaked on ${backend}`);
    return values;
  };
  const cpu = await run('cpu');
  const native = await run('wasm');
  return [cpu, native];
}

type Pad = 'same' | 'valid' | [[number, number], [number, number], [number, number], [number, number]];

test('native convolutions (plain, with bias, with bias + ReLU) and both gradients match the cpu backend', async (t) => {
  if (skipWithoutAddon(t)) return;
  let worst = 0;
  let cases = 0;
  for (const k of [1, 3, 7]) {
    for (const s of [1, 2]) {
      for (const pad of [
        'same',
        'valid',
        [
          [0, 0],
          [1, 2],
          [2, 1],
          [0, 0],
        ],
      ] as Pad[]) {
        for (const ci of [3, 16]) {
          const h = k === 7 ? 11 : 9 + s - 1;
          const xShape = [2, h, h + 1, ci];
          const wShape = [k, k, ci, 5];
          const x = randomArray(xShape, cases);
          const w = randomArray(wShape, cases + 100);
          const b = randomArray([5], cases + 200);
          const dilation = k === 3 && s === 1 ? 2 : 1; // dilated forward convolutions too (tfjs has no dilated gradient)
          const [cpu, native] = await onCpuAndNative(() => {
            const X = tf.tensor4d(x, xShape as [number, number, number, number]);
            const W = tf.tensor4d(w, wShape as [number, number, number, number]);
            const B = tf.tensor1d(b);
            const plain = tf.conv2d(X, W, s, pad, 'NHWC', dilation);
            const biased = tf.fused.conv2d({ x: X, filter: W, bias: B, strides: s, pad, dilations: dilation });
            const relu = tf.fused.conv2d({
              x: X,
              filter: W,
              bias: B,
              strides: s,
              pad,
              dilations: dilation,
              activation: 'relu',
            });
            const f = (A: tf.Tensor, V: tf.Tensor) =>
              tf
                .conv2d(A as tf.Tensor4D, V as tf.Tensor4D, s, pad)
                .square()
                .sum();
            const [gx, gw] = tf.grads(f)([X, W]);
            return [plain, biased, relu, gx, gw];
          });
          for (let i = 0; i < cpu.length; i++) {
            const err = maxRelativeError(cpu[i], native[i]);
            assert.ok(
              err < 1e-5,
              `kernel ${k} stride ${s} pad ${JSON.stringify(pad)} channels ${ci} output ${i}: relative error ${err}`,
            );
            worst = Math.max(worst, err);
          }
          cases++;
        }
      }
    }
  }
  assert.equal(cases, 36);
  assert.ok(worst > 0, 'the two backends computed independently');
});

test('native BatchNorm in inference (with and without scale and offset, 2-D and 4-D) matches the cpu backend', async (t) => {
  if (skipWithoutAddon(t)) return;
  const [cpu, native] = await onCpuAndNative(() => {
    const x4 = tf.tensor4d(randomArray([2, 3, 4, 6], 1, 3), [2, 3, 4, 6]);
    const x2 = tf.tensor2d(randomArray([5, 6], 2), [5, 6]);
    const mean = tf.tensor1d(randomArray([6], 3, 3));
    const variance = tf.tensor1d(randomArray([6], 4, 1));
    const offset = tf.tensor1d(randomArray([6], 5));
    const scale = tf.tensor1d(randomArray([6], 6, 1));
    return [
      tf.batchNorm(x4, mean, variance, offset, scale, 1e-3),
      tf.batchNorm(x4, mean, variance, undefined, undefined, 1e-5),
      tf.batchNorm(x2, mean, variance, offset, scale, 0.01),
    ];
  });
  for (let i = 0; i < cpu.length; i++) assert.ok(maxRelativeError(cpu[i], native[i]) < 1e-6, `output ${i}`);
});

test("native MaxPoolGrad (ResNet50's 3×3 stride-2 pool, padded and not) matches the cpu backend", async (t) => {
  if (skipWithoutAddon(t)) return;
  for (const pad of ['same', 'valid'] as const) {
    const [cpu, native] = await onCpuAndNative(() => {
      const x = tf.tensor4d(randomArray([2, 9, 10, 4], 7), [2, 9, 10, 4]);
      const pooledShape = tf.maxPool(x, 3, 2, pad).shape;
      const probe = tf.tensor4d(randomArray(pooledShape, 8), pooledShape);
      return [
        tf.grad((a: tf.Tensor) =>
          tf
            .maxPool(a as tf.Tensor4D, 3, 2, pad)
            .mul(probe)
            .sum(),
        )(x),
      ];
    });
    assert.ok(maxRelativeError(cpu[0], native[0]) < 1e-6, pad);
  }
});

test("native column sums (a bias gradient's Sum over all axes but the last) match the cpu backend; other sums fall back to wasm", async (t) => {
  if (skipWithoutAddon(t)) return;
  const [cpu, native] = await onCpuAndNative(() => {
    const x = tf.tensor4d(randomArray([3, 5, 7, 6], 11, 2), [3, 5, 7, 6]);
    return [
      x.sum([0, 1, 2]),
      x.sum([2, 0, 1], true),
      x.sum([-4, -3, -2]),
      x.sum([1]),
      x.sum(),
      tf.tensor2d(randomArray([9, 4], 12), [9, 4]).sum(0),
    ];
  });
  for (let i = 0; i < cpu.length; i++) assert.ok(maxRelativeError(cpu[i], native[i]) < 1e-6, `sum ${i}`);
});

test('native training BatchNorm: statistics, output and gradients equal the composed ops on cpu, also for a large mean', async (t) => {
  if (skipWithoutAddon(t)) return;
  for (const offset of [0, 1000]) {
    const shape: [number, number, number, number] = [3, 4, 5, 6];
    const [cpu, native] = await onCpuAndNative(() => {
      const x = tf.tensor4d(randomArray(shape, 5, offset), shape);
      const gamma = tf.tensor1d(randomArray([6], 6, 1));
      const beta = tf.tensor1d(randomArray([6], 7));
      const probe = tf.tensor4d(randomArray(shape, 8), shape);
      const { y, mean, variance } = batchNormTraining(x, gamma, beta, 1e-3);
      const loss = (a: tf.Tensor, g: tf.Tensor, b: tf.Tensor): tf.Tensor => {
        const r = batchNormTraining(a, g as tf.Tensor1D, b as tf.Tensor1D, 1e-3);
        tf.dispose([r.mean, r.variance]);
        return r.y.mul(probe).sum();
      };
      return [y, mean, variance, ...tf.grads(loss)([x, gamma, beta])];
    });
    const names = ['y', 'mean', 'variance', 'dx', 'dgamma', 'dbeta'];
    for (let i = 0; i < cpu.length; i++) {
      const err = maxRelativeError(cpu[i], native[i]);
      // With mean 1000, float32 itself keeps only ~1e-4 of the deviations; both sides round alike.
      assert.ok(err < (offset ? 2e-3 : 1e-5), `offset ${offset}, ${names[i]}: relative error ${err}`);
    }
  }
});

test('a whole ResNet50 forward pass and fine-tune gradients agree with and without the native kernels', async (t) => {
  if (skipWithoutAddon(t)) return;
  await tf.setBackend('wasm');
  const model = await createBoatModel({ classes: ['a', 'b', 'c'], mode: 'finetune', inputSize: 64 });
  const x = tf.tensor4d(
    randomArray([2, 64, 64, 3], 9).map((v) => v * 200),
    [2, 64, 64, 3],
  );
  const y = tf.tensor1d([0, 2], 'int32');
  const probe = ['conv1', 'res2a_branch2b', 'res5c_branch2c', 'bn5c_branch2c'];
  // Conv biases are left out: BatchNorm follows every conv and removes them, so their exact gradient
  // is zero and both sides return rounding noise (~1e-7).
  const variables = model
    .trainableVariables()
    .filter((v) => probe.some((p) => new RegExp(`(^|/)${p}/(kernel|gamma|beta)`).test(v.name)));
  assert.equal(variables.length, 5, "the probed convolutions' kernels, gamma and beta of the probed BatchNorm");
  // Logits first for both kernel sets: a training pass updates BatchNorm's moving statistics.
  const logits = (): Float32Array[] => [tf.tidy(() => model.forward(x, false).dataSync() as Float32Array)];
  const gradients = (): Float32Array[] => {
    const { value, grads } = tf.variableGrads(() => nllLoss(model.forward(x, true), y), variables);
    const out = variables.map((v) => grads[v.name].dataSync() as Float32Array);
    tf.dispose([value, ...Object.values(grads)]);
    return out;
  };
  const both = (f: () => Float32Array[]): [Float32Array[], Float32Array[]] => {
    const before = tf.memory().numTensors;
    const native = f();
    setNativeKernels(false);
    try {
      const wasm = f();
      assert.equal(tf.memory().numTensors, before, 'no tensor leaked');
      return [wasm, native];
    } finally {
      setNativeKernels(true);
    }
  };
  for (const [name, f] of [
    ['logits', logits],
    ['gradient', gradients],
  ] as const) {
    const [wasm, native] = both(f);
    for (let i = 0; i < wasm.length; i++) {
      const err = maxRelativeError(wasm[i], native[i]);
      assert.ok(err < 1e-3, `${name} ${name === 'logits' ? '' : variables[i].name}: relative error ${err}`);
    }
  }
  tf.dispose([x, y]);
  model.dispose();
});

test('setNativeKernels switches back to the wasm kernels and again; BOAT_NATIVE=0 turns the addon off', async (t) => {
  assert.deepEqual(loadNativeAddon({ BOAT_NATIVE: '0' }), { reason: 'BOAT_NATIVE=0' });
  if (skipWithoutAddon(t)) return;
  const conv = () => tf.getKernel('Conv2D', 'wasm');
  const nativeConv = conv();
  assert.equal(setNativeKernels(false), true);
  assert.equal(nativeKernelsInUse(), null);
  assert.notEqual(conv(), nativeConv);
  assert.equal(tf.getKernel('BoatBatchNormTrain', 'wasm'), undefined);
  assert.equal(setNativeKernels(true), false);
  assert.equal(conv(), nativeConv);
  assert.match(nativeKernelsInUse() ?? '', /^oneDNN \d+\.\d+\.\d+, \d+ threads?$/);
});
