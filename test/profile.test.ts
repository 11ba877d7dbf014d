/**
 * `boat bench --profile` (lib/bench/profile.ts, onednn-verbose.ts): the per-kernel timing on a tiny conv +
 * BatchNorm + dense model's train step (exclusive times, the kernels restored, no tensors kept), nested
 * kernel calls, oneDNN's verbose lines (real lines captured from oneDNN 2.6.3) and their charging to the
 * kernels, and with the native addon a whole profile in its child process on ResNet50 at 32 px.
 */
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as tf from '../lib/engine/tf';

import { nativeKernelsInUse, selectBackend } from '../lib';
import { parseOnednnVerboseLine, reorderKind } from '../lib/bench/onednn-verbose';
import {
  benchProfile,
  formatProfile,
  kernelCategory,
  OnednnCharger,
  profileJson,
  profileSteps,
  summarise,
  trainWorkload,
  type StepProfile,
} from '../lib/bench/profile';
import { skipWithoutNativeAddon } from './native-skips';
import { tinyModel } from './tiny-model';

/** Timers of two clocks and float sums: what "no more than" allows for. */
const EPSILON_MS = 0.5;

let nativeOn = false;

before(async () => {
  const backend = await selectBackend(undefined, 'fp32');
  assert.equal(backend.name, 'wasm');
  nativeOn = nativeKernelsInUse() !== null;
});

const kernelFuncs = (): Map<string, tf.KernelFunc> =>
  new Map(tf.getKernelsForBackend(tf.getBackend()).map((k) => [k.kernelName, k.kernelFunc]));

function assertRestored(before: Map<string, tf.KernelFunc>): void {
  const after = kernelFuncs();
  assert.equal(after.size, before.size, 'as many kernels registered as before');
  for (const [name, func] of before) assert.equal(after.get(name), func, `${name}: the original kernelFunc again`);
}

function assertAddsUp(p: StepProfile): void {
  const tracked = p.kernels.reduce((a, k) => a + k.ms, 0);
  for (const k of p.kernels) {
    assert.ok(k.calls > 0, `${k.kernel}: calls ${k.calls}`);
    assert.ok(k.ms >= 0, `${k.kernel}: exclusive time ${k.ms} ms`);
  }
  assert.ok(tracked <= p.stepMs + EPSILON_MS, `kernels ${tracked} ms in a step of ${p.stepMs} ms`);
  const categories = p.categories.reduce((a, c) => a + c.ms, 0);
  assert.ok(Math.abs(categories - Math.max(p.stepMs, tracked)) < EPSILON_MS, `categories sum to ${categories} ms`);
}

test('a train step of a conv + BatchNorm + dense model: every kernel timed exclusively, then restored', async () => {
  const model = tinyModel({ convs: 2 });
  const workload = trainWorkload(model, 4, 8);
  try {
    await workload.step(); // warm-up: the optimizer's slots are made here
    const originals = kernelFuncs();
    const tensors = tf.memory().numTensors;
    const profile = await profileSteps(() => workload.step(), 2);
    assert.equal(tf.memory().numTensors, tensors, 'no tensor kept by the profiled steps');
    assertRestored(originals);

    assert.equal(profile.steps, 2);
    const names = profile.kernels.map((k) => k.kernel);
    assert.ok(
      names.some((n) => n === 'Conv2D' || n === 'FusedConv2D'),
      `a forward convolution among ${names}`,
    );
    for (const n of ['Conv2DBackpropFilter', 'Conv2DBackpropInput'])
      assert.ok(names.includes(n), `${n} among ${names}`);
    const conv = profile.kernels.find((k) => k.kernel === 'Conv2DBackpropFilter');
    assert.equal(conv?.calls, 2, 'one filter gradient per convolution per step');
    assert.equal(conv?.category, 'convolution');
    assertAddsUp(profile);
    assert.ok(profile.categories.some((c) => c.category === 'untracked'));
    assert.ok(profile.categories.some((c) => c.category === 'convolution' && c.ms > 0));
  } finally {
    workload.dispose();
    model.dispose();
  }
});

test('a kernel that runs another kernel is charged its own time only', async () => {
  const backend = tf.getBackend();
  const busy = (ms: number): void => {
    const end = performance.now() + ms;
    while (performance.now() < end);
  };
  type Heap = { makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo };
  tf.registerKernel({
    kernelName: 'ProfileTestInner',
    backendName: backend,
    kernelFunc: ({ inputs, backend: b }) => {
      busy(20);
      return (b as unknown as Heap).makeOutput((inputs.x as tf.TensorInfo).shape, 'float32');
    },
  });
  tf.registerKernel({
    kernelName: 'ProfileTestOuter',
    backendName: backend,
    kernelFunc: ({ inputs, backend: b }) => {
      busy(2);
      const x = inputs.x as tf.Tensor;
      tf.dispose(tf.engine().runKernel<tf.Tensor>('ProfileTestInner', { x }, {}));
      return (b as unknown as Heap).makeOutput(x.shape, 'float32');
    },
  });
  const x = tf.zeros([4]);
  try {
    const originals = kernelFuncs();
    const tensors = tf.memory().numTensors;
    const profile = await profileSteps(() => {
      tf.dispose(tf.engine().runKernel<tf.Tensor>('ProfileTestOuter', { x }, {}));
    }, 2);
    assert.equal(tf.memory().numTensors, tensors);
    assertRestored(originals);
    const [outer, inner] = ['ProfileTestOuter', 'ProfileTestInner'].map((n) =>
      profile.kernels.find((k) => k.kernel === n),
    );
    assert.ok(outer && inner, 'both kernels timed');
    assert.equal(outer.calls, 1);
    assert.equal(inner.calls, 1);
    assert.ok(inner.ms >= 20, `inner ${inner.ms} ms`);
    assert.ok(outer.ms >= 2 && outer.ms < inner.ms, `outer ${outer.ms} ms exclusive of inner's ${inner.ms}`);
    assert.equal(kernelCategory('ProfileTestOuter'), 'other');
    assertAddsUp(profile);
  } finally {
    x.dispose();
    tf.unregisterKernel('ProfileTestOuter', backend);
    tf.unregisterKernel('ProfileTestInner', backend);
  }
});

test('the kernels are restored when a profiled step throws', async () => {
  const originals = kernelFuncs();
  await assert.rejects(
    profileSteps(() => {
      tf.tidy(() => tf.add(tf.ones([2]), tf.ones([2])));
      throw new Error('step failed');
    }, 1),
    /step failed/,
  );
  assertRestored(originals);
});

test('kernel categories', () => {
  const cases: Record<string, string> = {
    Conv2D: 'convolution',
    FusedConv2D: 'convolution',
    Conv2DBackpropInput: 'convolution',
    Conv2DBackpropFilter: 'convolution',
    BoatConv2DAdd: 'convolution',
    _FusedMatMul: 'matrix products',
    BatchMatMul: 'matrix products',
    FusedBatchNorm: 'BatchNorm',
    BoatBatchNormTrain: 'BatchNorm',
    BoatBatchNormTrainGrad: 'BatchNorm',
    Relu: 'elementwise/activation',
    Multiply: 'elementwise/activation',
    Add: 'elementwise/activation',
    Step: 'elementwise/activation',
    MaxPool: 'pooling',
    MaxPoolGrad: 'pooling',
    Sum: 'reductions',
    Mean: 'reductions',
    Reshape: 'reshape/transpose/copies',
    PadV2: 'reshape/transpose/copies',
    Identity: 'reshape/transpose/copies',
    OneHot: 'other',
  };
  for (const [kernel, category] of Object.entries(cases)) assert.equal(kernelCategory(kernel), category, kernel);
});

// Real lines of oneDNN 2.6.3 (ONEDNN_VERBOSE=1) from the native kernels on an AVX-512 bf16 CPU.
const VERBOSE = {
  info: 'onednn_verbose,info,cpu,isa:Intel AVX-512 with Intel DL Boost and bfloat16 support',
  template:
    'onednn_verbose,info,prim_template:operation,engine,primitive,implementation,prop_kind,memory_descriptors,attributes,auxiliary,problem_desc,exec_time',
  filterLayout:
    'onednn_verbose,exec,cpu,reorder,jit:uni,undef,src_f32::blocked:cdba:f0 dst_f32::blocked:Acdb16a:f0,,,16x8x3x3,2.08301',
  filterBf16:
    'onednn_verbose,exec,cpu,reorder,jit:uni,undef,src_f32::blocked:cdba:f0 dst_bf16::blocked:AcdB16a2b:f0,,,16x8x3x3,3.75806',
  activationBf16:
    'onednn_verbose,exec,cpu,reorder,jit:uni,undef,src_f32::blocked:acdb:f0 dst_bf16::blocked:aBcd16b:f0,,,2x16x16x16,14.2671',
  gradientBack:
    'onednn_verbose,exec,cpu,reorder,jit:uni,undef,src_f32:p:blocked:aBcd16b:f0 dst_f32::blocked:acdb:f0,,,2x8x16x16,0.026123',
  forwardAddRelu:
    'onednn_verbose,exec,cpu,convolution,brgconv_1x1:avx512_core,forward_inference,src_f32::blocked:acdb:f0 wei_f32::blocked:Acdb64a:f0 bia_f32::blocked:a:f0 dst_f32::blocked:acdb:f0,attr-post-ops:sum+eltwise_relu ,alg:convolution_direct,mb1_ic64oc256_ih8oh8kh1sh1dh0ph0_iw8ow8kw1sw1dw0pw0,0.0568848',
  backwardWeights:
    'onednn_verbose,exec,cpu,convolution,jit:avx512_core,backward_weights,src_f32::blocked:acdb:f0 wei_f32::blocked:Acdb16a:f0 bia_undef::undef::f0 dst_f32::blocked:acdb:f0,,alg:convolution_direct,mb2_ic8oc16_ih16oh16kh3sh1dh0ph1_iw16ow16kw3sw1dw0pw1,1.646',
  matmul:
    'onednn_verbose,exec,cpu,matmul,brg:avx512_core_bf16,undef,src_bf16::blocked:abc:f0 wei_bf16::blocked:abc:f0 bia_f32::blocked:abc:f0_mask4 dst_f32::blocked:abc:f0,,,1x1x256:1x256x5:1x1x5,0.00610352',
  matmulOperand:
    'onednn_verbose,exec,cpu,reorder,jit:uni,undef,src_f32::blocked:abc:f0 dst_bf16::blocked:abc:f0,,,1x8x3,0.00219727',
};

test("oneDNN's verbose exec lines: primitive kind, reorders by what they convert, time; other lines ignored", () => {
  const parse = (line: string) => parseOnednnVerboseLine(line);
  assert.deepEqual(parse(VERBOSE.backwardWeights), {
    kind: 'convolution',
    implementation: 'jit:avx512_core',
    propKind: 'backward_weights',
    problem: 'mb2_ic8oc16_ih16oh16kh3sh1dh0ph1_iw16ow16kw3sw1dw0pw1',
    ms: 1.646,
  });
  assert.deepEqual(parse(VERBOSE.forwardAddRelu), {
    kind: 'convolution',
    implementation: 'brgconv_1x1:avx512_core',
    propKind: 'forward_inference',
    problem: 'mb1_ic64oc256_ih8oh8kh1sh1dh0ph0_iw8ow8kw1sw1dw0pw0',
    ms: 0.0568848,
  });
  assert.equal(parse(VERBOSE.matmul)?.kind, 'matmul');
  assert.equal(parse(VERBOSE.matmul)?.ms, 0.00610352);
  assert.equal(parse(VERBOSE.filterLayout)?.kind, 'reorder, filter, layout');
  assert.equal(parse(VERBOSE.filterLayout)?.ms, 2.08301);
  assert.equal(parse(VERBOSE.filterBf16)?.kind, 'reorder, filter, f32->bf16');
  assert.equal(parse(VERBOSE.activationBf16)?.kind, 'reorder, activation, f32->bf16');
  assert.equal(parse(VERBOSE.gradientBack)?.kind, 'reorder, activation, layout');
  assert.equal(parse(VERBOSE.matmulOperand)?.kind, 'reorder, matmul operand, f32->bf16');
  assert.equal(reorderKind('garbage'), 'reorder');
  for (const other of [VERBOSE.info, VERBOSE.template, 'boat_profile,kernel,Conv2D', 'Using wasm backend', ''])
    assert.equal(parse(other), null, other);
  // A truncated exec line (no time) is not an exec either.
  assert.equal(parse(VERBOSE.matmul.slice(0, VERBOSE.matmul.lastIndexOf(','))), null);
});

test("oneDNN's lines are charged to the kernel running them, per step, inside the profiled steps only", () => {
  const charger = new OnednnCharger();
  const lines = [
    VERBOSE.backwardWeights, // warm-up: before begin, not counted
    'boat_profile,begin,fp32,train',
    'boat_profile,kernel,Conv2DBackpropFilter',
    VERBOSE.filterLayout,
    VERBOSE.backwardWeights,
    'boat_profile,kernel,',
    'boat_profile,kernel,Relu',
    'boat_profile,kernel,',
    'boat_profile,kernel,Conv2DBackpropFilter',
    VERBOSE.backwardWeights,
    'boat_profile,kernel,',
    VERBOSE.matmul, // outside every kernel
    'boat_profile,end',
    VERBOSE.backwardWeights, // after end
  ];
  for (const line of lines) charger.line(line);
  const stats = new Map([
    ['Conv2DBackpropFilter', { calls: 4, ms: 12 }],
    ['Relu', { calls: 2, ms: 1 }],
  ]);
  const profile = summarise(stats, 2, 10);
  const onednn = charger.profile({ precision: 'fp32', workload: 'train', profile });
  assert.equal(onednn.kernels.length, 1, 'only the kernel that ran oneDNN');
  const [row] = onednn.kernels;
  assert.equal(row.kernel, 'Conv2DBackpropFilter');
  assert.equal(row.wallMs, 6);
  assert.ok(Math.abs(row.byKind.convolution - 1.646) < 1e-9, 'two 1.646 ms executions over 2 steps');
  assert.ok(Math.abs(row.byKind['reorder, filter, layout'] - 2.08301 / 2) < 1e-9);
  assert.ok(Math.abs(row.outsideMs - (6 - 1.646 - 2.08301 / 2)) < 1e-9);
  assert.ok(Math.abs(onednn.outsideKernelsMs - 0.00610352 / 2) < 1e-9);
  assert.ok(Math.abs(onednn.totalMs - (1.646 + 2.08301 / 2 + 0.00610352 / 2)) < 1e-9);
  assert.deepEqual(onednn.convolutions, [
    {
      propKind: 'backward_weights',
      problem: 'mb2_ic8oc16_ih16oh16kh3sh1dh0ph1_iw16ow16kw3sw1dw0pw1',
      implementation: 'jit:avx512_core',
      calls: 1,
      ms: 1.646,
    },
  ]);
  // A section the child never began has no oneDNN time.
  assert.deepEqual(charger.profile({ precision: 'bf16', workload: 'train', profile }).kernels, []);
});

test('a whole profile in its child process with ONEDNN_VERBOSE=1 (ResNet50, 32 px, batch 1)', async (t) => {
  if (skipWithoutNativeAddon(t, nativeOn)) return;
  const result = await benchProfile({ batch: 1, size: 32, steps: { train: 1, forward: 1 } });
  assert.match(result.backend, /native kernels: oneDNN/);
  const section = (precision: string, workload: string) =>
    result.sections.find((s) => s.precision === precision && s.workload === workload);
  const train = section('fp32', 'train');
  const forward = section('fp32', 'forward');
  assert.ok(train && forward, `sections ${result.sections.map((s) => `${s.precision} ${s.workload}`)}`);
  for (const s of result.sections) {
    assertAddsUp(s.profile);
    assert.ok(s.plainStepMs > 0);
    assert.equal(s.onednn.outsideKernelsMs, 0, 'every oneDNN primitive ran inside a TF.js kernel');
    for (const k of s.onednn.kernels)
      assert.ok(k.onednnMs <= k.wallMs * 1.01 + 0.1, `${k.kernel}: oneDNN ${k.onednnMs} ms of ${k.wallMs} ms`);
  }
  const filterGrad = train.onednn.kernels.find((k) => k.kernel === 'Conv2DBackpropFilter');
  assert.equal(train.profile.kernels.find((k) => k.kernel === 'Conv2DBackpropFilter')?.calls, 53);
  assert.ok(filterGrad && filterGrad.byKind.convolution > 0, 'the filter gradients ran oneDNN convolutions');
  const convCalls = (propKind: string) =>
    train.onednn.convolutions.filter((c) => c.propKind === propKind).reduce((a, c) => a + c.calls, 0);
  // Every convolution's three directions, but the stem's input gradient: its input is the image, which
  // needs none (conv-layer-gradients.ts).
  assert.deepEqual(
    ['forward_training', 'forward_inference', 'backward_data', 'backward_weights'].map(convCalls),
    [0, 53, 52, 53],
  );
  // The folded forward: 53 convolutions, 16 of them with the residual add, and no BatchNorm.
  const calls = (name: string) => forward.profile.kernels.find((k) => k.kernel === name)?.calls ?? 0;
  assert.equal(calls('FusedConv2D') + calls('BoatConv2DAdd'), 53);
  assert.equal(calls('FusedBatchNorm'), 0);
  const text = formatProfile(result).join('\n');
  assert.match(text, /fp32 train step, batch 1, 32 px/);
  assert.match(text, /untracked \(JS glue, gradient bookkeeping, tape\)/);
  assert.match(text, /inside oneDNN/);
  assertBackendOnce(result.backend, profileJson(result));
});

/** `--json`'s backend line is written once, at the top, and everything else of the result under `profile`. */
function assertBackendOnce(line: string, json: ReturnType<typeof profileJson>): void {
  assert.equal(json.backend, line);
  assert.ok(!('backend' in json.profile), 'no second backend line under profile');
  assert.equal(JSON.stringify(json).split(JSON.stringify(line)).length - 1, 1, 'the backend line appears once');
}

test("--json's shape: the backend line once at the top, the batch, size, sections and skips under profile", () => {
  const line = 'Using wasm backend (SIMD, 2 threads; native kernels: oneDNN)';
  const json = profileJson({ backend: line, batch: 8, size: 224, sections: [], skipped: ['bf16: no native bf16'] });
  assertBackendOnce(line, json);
  assert.deepEqual(json.profile, { batch: 8, size: 224, sections: [], skipped: ['bf16: no native bf16'] });
});
