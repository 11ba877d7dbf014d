/**
 * The native kernels (native/boat_native.cc through lib/engine/native-kernels.ts) against tfjs' cpu
 * backend and against the wasm-only kernels they replace: convolutions and their gradients (oneDNN),
 * BatchNorm in inference and training, MaxPoolGrad, Slice and PadV2, then a whole ResNet50 forward pass and
 * train step.
 * Every test is a reported skip when the addon is not built.
 */
import assert from 'node:assert/strict';
import { before, test, type TestContext } from 'node:test';
import * as tf from '../lib/engine/tf';

import {
  batchNormFrozen,
  batchNormReluFused,
  batchNormTraining,
  createBoatModel,
  loadNativeAddon,
  nativeColumnSumsReused,
  nativeKernelsInUse,
  nllLoss,
  selectBackend,
  setAddReluFusion,
  setBatchNormReluFusion,
  setNativeKernels,
} from '../lib';
import { convCases, convOutputs, CONV_OUTPUTS, maxRelativeError, randomArray } from './conv-cases';
import { skipRestUnlessCi } from './helpers';
import { tidyValues } from './tidy-values';

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

/** Runs `f` on the cpu backend and on wasm with native kernels; returns both results as arrays. */
async function onCpuAndNative(f: () => tf.Tensor[]): Promise<[Float32Array[], Float32Array[]]> {
  const run = async (backend: string): Promise<Float32Array[]> => {
    await tf.setBackend(backend);
    return tidyValues(f, backend);
  };
  const cpu = await run('cpu');
  const native = await run('wasm');
  return [cpu, native];
}

test('native convolutions (plain, with bias, with bias + ReLU) and both gradients match the cpu backend', async (t) => {
  if (skipWithoutAddon(t)) return;
  let worst = 0;
  const cases = convCases();
  for (const c of cases) {
    const [cpu, native] = await onCpuAndNative(convOutputs(c));
    for (let i = 0; i < cpu.length; i++) {
      const err = maxRelativeError(cpu[i], native[i]);
      assert.ok(err < 1e-5, `${c.where} ${CONV_OUTPUTS[i]}: relative error ${err}`);
      worst = Math.max(worst, err);
    }
  }
  assert.equal(cases.length, 36);
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

test('native MaxPoolGrad sends each gradient to the first maximum of its window, as the cpu backend does, also among ties', async (t) => {
  if (skipWithoutAddon(t)) return;
  // After a ReLU most windows hold several zeros, and rounding to a few values makes equal maxima too;
  // 20 channels leave a remainder past every vector width.
  const shape: [number, number, number, number] = [3, 11, 12, 20];
  const values = randomArray(shape, 21).map((v) => Math.max(0, Math.round(v * 4) / 4));
  const [cpu, native] = await onCpuAndNative(() => {
    const x = tf.tensor4d(values, shape);
    const pooledShape = tf.maxPool(x, 3, 2, 'same').shape;
    const probe = tf.tensor4d(randomArray(pooledShape, 22), pooledShape);
    return [
      tf.grad((a: tf.Tensor) =>
        tf
          .maxPool(a as tf.Tensor4D, 3, 2, 'same')
          .mul(probe)
          .sum(),
      )(x),
    ];
  });
  assert.ok(values.filter((v) => v === 0).length > values.length / 3, 'the input has ties');
  // The sums at a pixel several windows chose are added in another order than cpu's: equal to rounding.
  assert.ok(maxRelativeError(cpu[0], native[0]) < 1e-6);
});

test('native Slice and PadV2 equal the cpu backend value for value, in every rank and shape tried; other dtypes fall back to wasm', async (t) => {
  if (skipWithoutAddon(t)) return;
  const [cpu, native] = await onCpuAndNative(() => {
    const x4 = tf.tensor4d(randomArray([4, 9, 10, 6], 31), [4, 9, 10, 6]);
    const big = tf.tensor4d(randomArray([4, 32, 32, 32], 32), [4, 32, 32, 32]);
    const x5 = tf.tensor(randomArray([2, 3, 4, 5, 6], 33), [2, 3, 4, 5, 6]);
    const x1 = tf.tensor1d(randomArray([17], 34));
    const ints = tf.tensor2d([1, 2, 3, 4, 5, 6], [2, 3], 'int32');
    return [
      tf.slice(x4, [0, 1, 1, 0], [4, 7, 8, 6]), // a padding's gradient: inner rows
      tf.slice(x4, [1, 2, 3, 2], [2, 5, 4, 3]), // partial along every axis
      tf.slice(big, [1, 0, 0, 0], [2, 32, 32, 32]), // contiguous, long enough to be split
      tf.slice(x4, [3, 8, 9, 5], [1, 1, 1, 1]),
      tf.slice(x5, [1, 0, 1, 2, 0], [1, 3, 2, 3, 6]),
      tf.slice(x1, [5], [9]),
      tf.slice(x4, [0, 4], [-1, 3]), // begin and size for the leading axes only, -1 to the end
      tf.slice(ints, [0, 1], [2, 2]).toFloat(),
      tf.pad(x4, [
        [0, 0],
        [1, 1],
        [1, 1],
        [0, 0],
      ]),
      tf.pad(
        x4,
        [
          [1, 0],
          [0, 2],
          [3, 1],
          [2, 0],
        ],
        -1.5,
      ),
      tf.pad(x1, [[4, 3]], 7),
      tf
        .pad(ints, [
          [1, 1],
          [0, 2],
        ])
        .toFloat(),
    ];
  });
  assert.equal(native.length, 12);
  native.forEach((v, i) => assert.deepEqual(Array.from(v), Array.from(cpu[i]), `output ${i}`));
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

test("a BatchNorm gradient sums its dx per channel as it writes it, and the bias gradient's Sum takes those sums: columnSums' bit for bit", async (t) => {
  if (skipWithoutAddon(t)) return;
  // 2·12·11 rows: more than one block of 64, split between the threads.
  const shape: [number, number, number, number] = [2, 12, 11, 6];
  for (const frozen of [false, true]) {
    const [known, computed, reused] = tf.tidy(() => {
      const x = tf.tensor4d(randomArray(shape, 41), shape);
      const gamma = tf.tensor1d(randomArray([6], 42, 1));
      const beta = tf.tensor1d(randomArray([6], 43));
      const probe = tf.tensor4d(randomArray(shape, 44), shape);
      const [mean, variance] = [tf.tensor1d(randomArray([6], 45)), tf.tensor1d(randomArray([6], 46, 1))];
      const dx = tf.grad((a: tf.Tensor) => {
        if (frozen) return batchNormFrozen(a, gamma, beta, mean, variance, 1e-3).mul(probe).sum();
        return batchNormTraining(a, gamma, beta, 1e-3).y.mul(probe).sum();
      })(x);
      const start = nativeColumnSumsReused();
      const fromKernel = dx.sum([0, 1, 2]).dataSync();
      const afterKernel = nativeColumnSumsReused();
      const recomputed = dx.add(tf.scalar(0)).sum([0, 1, 2]).dataSync(); // new data: columnSums runs
      return [fromKernel, recomputed, [afterKernel - start, nativeColumnSumsReused() - afterKernel]];
    });
    const what = frozen ? 'frozen' : 'training';
    assert.deepEqual(reused, [1, 0], `${what}: Sums that took the kernel's`);
    assert.deepEqual(Array.from(known), Array.from(computed), what);
  }
});

test('native training BatchNorm: statistics, output and gradients equal the composed ops on cpu, also for a large mean', async (t) => {
  if (skipWithoutAddon(t)) return;
  // The kernel sums deviations from a shift sampled from x, in one pass: also with a first row far
  // from the rest (a zero-padded convolution's corner can be).
  for (const [offset, outlier] of [
    [0, 0],
    [1000, 0],
    [0, 500],
  ]) {
    const shape: [number, number, number, number] = [3, 4, 5, 6];
    const [cpu, native] = await onCpuAndNative(() => {
      const values = randomArray(shape, 5, offset);
      for (let k = 0; k < shape[3]; k++) values[k] += outlier;
      const x = tf.tensor4d(values, shape);
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
      assert.ok(
        err < (offset ? 2e-3 : 1e-5),
        `offset ${offset}, outlier ${outlier}, ${names[i]}: relative error ${err}`,
      );
    }
  }
});

test('native BatchNorm + ReLU in one kernel, training and frozen: output and gradients equal BatchNorm then tf.relu on cpu', async (t) => {
  if (skipWithoutAddon(t)) return;
  await tf.setBackend('wasm');
  assert.ok(batchNormReluFused(), 'the addon registers the fused kernels');
  const shape: [number, number, number, number] = [3, 4, 5, 6];
  const ops = (fused: boolean) => (): tf.Tensor[] => {
    const x = tf.tensor4d(randomArray(shape, 15), shape);
    const gamma = tf.tensor1d(randomArray([6], 16, 1));
    const beta = tf.tensor1d(randomArray([6], 17));
    const mean = tf.tensor1d(randomArray([6], 18));
    const variance = tf.tensor1d(randomArray([6], 19, 1));
    const probe = tf.tensor4d(randomArray(shape, 20), shape);
    const training = (a: tf.Tensor, g: tf.Tensor, b: tf.Tensor): tf.Tensor => {
      const r = batchNormTraining(a, g as tf.Tensor1D, b as tf.Tensor1D, 1e-3, fused);
      tf.dispose([r.mean, r.variance]);
      return fused ? r.y : tf.relu(r.y);
    };
    const frozen = (a: tf.Tensor, g: tf.Tensor, b: tf.Tensor): tf.Tensor => {
      const y = batchNormFrozen(a, g as tf.Tensor1D, b as tf.Tensor1D, mean, variance, 1e-3, fused);
      return fused ? y : tf.relu(y);
    };
    const outputs: tf.Tensor[] = [];
    for (const f of [training, frozen]) {
      outputs.push(f(x, gamma, beta), ...tf.grads((a, g, b) => f(a, g, b).mul(probe).sum())([x, gamma, beta]));
    }
    return outputs;
  };
  const names = ['training y', 'dx', 'dgamma', 'dbeta', 'frozen y', 'dx', 'dgamma', 'dbeta'];
  // Reference: the two ops on cpu, ReLU's gradient tfjs' own.
  await tf.setBackend('cpu');
  const reference = tidyValues(ops(false), 'cpu');
  const zeros = reference[0].filter((v) => v === 0).length;
  assert.ok(zeros > 0.3 * reference[0].length && zeros < 0.7 * reference[0].length, `the ReLU cuts (${zeros} zeros)`);
  const [cpuFused, native] = await onCpuAndNative(ops(true));
  for (const [which, values] of [
    ['cpu, composed', cpuFused],
    ['native', native],
  ] as const) {
    for (let i = 0; i < reference.length; i++) {
      const err = maxRelativeError(reference[i], values[i]);
      assert.ok(err < 1e-5, `${which} ${names[i]}: relative error ${err}`);
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
    ['gradient, BatchNorm frozen', gradients],
  ] as const) {
    model.batchNormFrozen = name === 'gradient, BatchNorm frozen';
    const [wasm, native] = both(f);
    for (let i = 0; i < wasm.length; i++) {
      const err = maxRelativeError(wasm[i], native[i]);
      assert.ok(err < 1e-3, `${name} ${name === 'logits' ? '' : variables[i].name}: relative error ${err}`);
    }
  }
  // The stem's and each block's first two BatchNorms feed a ReLU alone: 1 + 16·2 = 33 run fused with it.
  // The 16 after a residual add run fused with it (add-relu.ts); left as a Relu kernel: the head's.
  for (const frozen of [false, true]) {
    model.batchNormFrozen = frozen;
    const profile = await tf.profile(() => {
      tf.dispose(gradients());
    });
    const calls = (kernel: string) => profile.kernels.filter((k) => k.name === kernel).length;
    const fused = frozen ? 'BoatBatchNormRelu' : 'BoatBatchNormTrainRelu';
    assert.equal(calls(fused), 33, `${fused} calls, BatchNorm frozen: ${frozen}`);
    assert.equal(calls(frozen ? 'BoatBatchNormFrozenReluGrad' : 'BoatBatchNormTrainReluGrad'), 33);
    assert.equal(calls('BoatAddRelu'), 16, `BoatAddRelu calls, BatchNorm frozen: ${frozen}`);
    assert.equal(calls('Relu'), 1, `Relu calls left, BatchNorm frozen: ${frozen}`);
  }
  // Switched off (the bench's comparisons), those ReLUs are their own kernels again.
  model.batchNormFrozen = false;
  const reluCalls = async () => {
    const profile = await tf.profile(() => {
      tf.dispose(gradients());
    });
    const names = profile.kernels.map((k) => k.name);
    return ['Relu', 'BoatBatchNormTrainRelu', 'BoatAddRelu'].map((kernel) => names.filter((n) => n === kernel).length);
  };
  assert.equal(setAddReluFusion(false), true);
  try {
    assert.deepEqual(await reluCalls(), [17, 33, 0], 'the add fusion off');
    assert.equal(setBatchNormReluFusion(false), true);
    assert.deepEqual(await reluCalls(), [50, 0, 0], 'both off');
  } finally {
    setBatchNormReluFusion(true);
    setAddReluFusion(true);
  }
  model.batchNormFrozen = false;
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
