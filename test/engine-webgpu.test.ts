/**
 * The webgpu backend (tfjs-backend-webgpu on Dawn) against the wasm backend, on a software Vulkan
 * device: SwiftShader, which Debian's chromium package ships (/usr/lib/chromium/vk_swiftshader_icd.json),
 * with the Vulkan loader from libvulkan1. It runs the same WGSL shaders and tfjs kernels as on a GPU,
 * on the CPU, so the GPU code path is checked for correctness in every run; speed needs a real GPU (docs/gpu.md).
 *
 * engine-scenario.ts runs here on wasm and in a child process on webgpu (BOAT_BACKEND=webgpu); the
 * tests compare the two. Without the driver, the loader or Dawn this file is skipped with the reason,
 * except under CI=true, where that is a failure.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { before, test } from 'node:test';
import * as tf from '../lib/engine/tf';

import { loadBoatModel, makeDemoDataset, predictImage, selectBackend } from '../lib';
import { isSoftwareAdapter, SYNC_READ_MESSAGE } from '../lib/engine/webgpu';
import { readResult, runScenario, ScenarioResult, SIZE } from './engine-scenario';
import { REPO_ROOT, tempDir } from './helpers';

const SWIFTSHADER_ICD = '/usr/lib/chromium/vk_swiftshader_icd.json';
const CHILD_TIMEOUT_MS = 10 * 60_000;

/** Why the webgpu half cannot run here, or null. */
function missing(): string | null {
  const icd = process.env.VK_ICD_FILENAMES || SWIFTSHADER_ICD;
  if (!fs.existsSync(icd)) return `no Vulkan driver file ${icd} (apt-get install chromium, which ships SwiftShader)`;
  const loader = ['/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib64', '/usr/lib'].some((d) =>
    fs.existsSync(`${d}/libvulkan.so.1`),
  );
  if (!loader) return 'no Vulkan loader (apt-get install libvulkan1)';
  try {
    require.resolve(`webgpu/dist/${process.platform}-${process.arch}/dawn.node`);
  } catch {
    return 'the optional npm package "webgpu" (Dawn) is not installed for this platform';
  }
  return null;
}

const why = missing();
const skip = why !== null && process.env.CI !== 'true' ? `webgpu on SwiftShader: ${why}` : false;

let wasm: ScenarioResult;
let gpu: ScenarioResult;
let childStderr = '';
let childSeconds = 0;

function runChild(work: string, demo: string): Promise<void> {
  const env = {
    ...process.env,
    BOAT_BACKEND: 'webgpu',
    VK_ICD_FILENAMES: process.env.VK_ICD_FILENAMES || SWIFTSHADER_ICD,
    BOAT_DEBUG: '',
  };
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(REPO_ROOT, 'dist', 'test', 'webgpu-child.js'), work, demo], {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), CHILD_TIMEOUT_MS);
    child.stdout.on('data', (d: Buffer) => (childStderr += d.toString()));
    child.stderr.on('data', (d: Buffer) => (childStderr += d.toString()));
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      childSeconds = (Date.now() - started) / 1000;
      if (code === 0) resolve();
      else reject(new Error(`the webgpu child failed (${signal ?? `exit ${code}`}):\n${childStderr.slice(-4000)}`));
    });
  });
}

before(async () => {
  if (skip) return;
  assert.equal(why, null, `CI=true: the webgpu tests must run, but ${why}`);
  assert.equal((await selectBackend('wasm')).name, 'wasm');
  const demo = path.join(tempDir(), 'demo');
  await makeDemoDataset({ out: demo, perClass: 1, minWidth: 64, maxWidth: 96 }); // 5 photos, one per class
  const gpuWork = tempDir();
  const child = runChild(gpuWork, demo); // meanwhile the same scenario on wasm, here
  wasm = await runScenario(tempDir(), demo);
  await child;
  gpu = readResult(gpuWork);
  console.log(`webgpu child: ${childSeconds.toFixed(0)} s; phases ${JSON.stringify(gpu.seconds)}`);
});

/** max |a − b| / max |a|: the error relative to the reference's scale. */
function relativeError(reference: Float32Array, actual: Float32Array): number {
  assert.equal(actual.length, reference.length, 'same length');
  let scale = 0;
  let err = 0;
  for (let i = 0; i < reference.length; i++) {
    scale = Math.max(scale, Math.abs(reference[i]));
    err = Math.max(err, Math.abs(reference[i] - actual[i]));
  }
  return scale === 0 ? err : err / scale;
}

function assertClose(key: string, tolerance: number): number {
  const err = relativeError(wasm.arrays[key], gpu.arrays[key]);
  assert.ok(err <= tolerance, `${key}: webgpu vs wasm relative error ${err} > ${tolerance}`);
  return err;
}

test('webgpu: a software adapter is never chosen by itself; forced, it runs with a one-line warning', { skip }, () => {
  const auto = gpu.values.auto as { reason?: string; adapter?: { architecture?: string } };
  assert.match(
    auto.reason ?? '',
    /^the only WebGPU adapter is a software renderer \(.*\), slower than wasm; BOAT_BACKEND=webgpu forces it$/,
  );
  assert.ok(auto.adapter && isSoftwareAdapter(auto.adapter));
  assert.match(String(gpu.values.backendLine), /^Using webgpu backend \(WebGPU via Dawn: .+, software renderer\)$/);
  const warnings = childStderr.split('\n').filter((l) => l.startsWith('warning: '));
  assert.deepEqual(warnings.length, 1, childStderr);
  assert.match(
    warnings[0],
    /^warning: the WebGPU adapter is a software renderer \(.+\): the GPU code path runs, on the CPU, far slower than the wasm backend$/,
  );
  assert.equal(isSoftwareAdapter({ vendor: 'nvidia', architecture: 'hopper', device: 'NVIDIA H100' }), false);
  assert.equal(isSoftwareAdapter({ vendor: 'mesa', device: 'llvmpipe (LLVM 15.0.6, 256 bits)' }), true);
  assert.equal(isSoftwareAdapter({ vendor: 'amd', isFallbackAdapter: true }), true);
});

/** max |a|. */
function largest(a: Float32Array): number {
  return a.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
}

/**
 * A convolution's bias followed by BatchNorm in training mode has a zero gradient (the batch mean
 * removes it), so both backends must give float noise, far below the layer's kernel gradient; a relative
 * error between two noises would mean nothing.
 */
function assertNoise(key: string, kernelKey: string): void {
  const scale = largest(wasm.arrays[kernelKey]);
  for (const [name, r] of [
    ['wasm', wasm],
    ['webgpu', gpu],
  ] as const) {
    assert.ok(
      largest(r.arrays[key]) <= 1e-5 * scale,
      `${key} on ${name}: ${largest(r.arrays[key])}, against ${scale} for the kernel`,
    );
  }
}

test(
  "webgpu: the fine-tune gradient of every ResNet50 variable (BatchNorm training) equals wasm's within 1e-3 of its scale",
  { skip },
  () => {
    const names = gpu.values['finetune.variables'] as string[];
    // 53 convolutions (kernel, bias) and 53 BatchNorms (gamma, beta), then the head's two dense layers.
    assert.equal(names.length, 53 * 4 + 4);
    assert.equal((wasm.values['finetune.variables'] as string[]).length, names.length);
    assertClose('finetune.loss', 1e-5);
    let worst = { err: 0, name: '' };
    let noise = 0;
    names.forEach((name, i) => {
      if (/^(conv1|res[2-5][a-f]_branch(1|2[abc]))\/bias/.test(name)) {
        assert.match(names[i - 1], /\/kernel/);
        assertNoise(`finetune.grad.${i}`, `finetune.grad.${i - 1}`);
        noise++;
        return;
      }
      const err = assertClose(`finetune.grad.${i}`, 1e-3);
      if (err > worst.err) worst = { err, name };
    });
    assert.equal(noise, 53, 'every convolution bias is one before BatchNorm');
    assert.ok(worst.err > 0, 'the two backends computed independently');
    for (const layer of ['bn_conv1', 'bn5c_branch2c']) {
      assertClose(`finetune.${layer}.movingMean`, 1e-4);
      assertClose(`finetune.${layer}.movingVariance`, 1e-4);
    }
    console.log(
      `${names.length - noise} gradients compared, worst relative error ${worst.err.toExponential(2)} (${worst.name}); 53 convolution biases ≈ 0 on both`,
    );
  },
);

test(
  'webgpu: a synchronous read (tfjs would need OffscreenCanvas) fails with a sentence that says so; an asynchronous one works',
  { skip },
  () => {
    assert.equal(gpu.values.syncRead, SYNC_READ_MESSAGE);
    assert.equal(gpu.values.asyncRead, 9);
  },
);

test(
  'webgpu: BatchNorm training and frozen, forward and backward, and the moving statistics they keep',
  { skip },
  () => {
    assertNoise('tinyTraining.grad.1', 'tinyTraining.grad.0'); // the conv bias, before BatchNorm in training mode
    for (const key of Object.keys(wasm.arrays).filter(
      (k) => /^(bnTraining|bnFrozen|tinyTraining|tinyFrozen)\./.test(k) && k !== 'tinyTraining.grad.1',
    ))
      assertClose(key, 1e-4);
    assert.ok(
      largest(gpu.arrays['tinyFrozen.grad.1']) > 1e-3,
      'with frozen statistics the conv bias does get a gradient',
    );
    for (const r of [wasm, gpu]) {
      assert.deepEqual(
        r.arrays['tinyFrozen.movingMean'],
        r.arrays['tinyTraining.movingMean'],
        'frozen: the moving mean is kept',
      );
      assert.deepEqual(
        r.arrays['tinyFrozen.movingVariance'],
        r.arrays['tinyTraining.movingVariance'],
        'frozen: the moving variance is kept',
      );
      assert.ok(
        r.arrays['tinyTraining.movingMean'].some((v) => v !== 0),
        'training: the moving mean moved from its initial zeros',
      );
    }
    assert.ok(
      relativeError(gpu.arrays['tinyTraining.grad.0'], gpu.arrays['tinyFrozen.grad.0']) > 1e-3,
      'frozen and training BatchNorm give different gradients',
    );
  },
);

test('webgpu: SGD epochs on the demo set reduce the loss (tiny net, loader and trainer), as on wasm', { skip }, () => {
  const losses = gpu.values.trainLoss as number[];
  assert.equal(losses.length, 4);
  assert.ok(losses[3] < losses[0], `train loss ${losses.join(' → ')}`);
  const val = gpu.values.valLoss as number[];
  assert.ok(val[3] < val[0], `val loss ${val.join(' → ')}`);
  (wasm.values.trainLoss as number[]).forEach((l, i) =>
    assert.ok(Math.abs(l - losses[i]) < 1e-4 * Math.max(1, l), `epoch ${i}: ${losses[i]} vs wasm ${l}`),
  );
});

type Predicted = Array<{ file: string; top?: Array<{ class: string; probability: number }>; error?: string }>;

test(
  'webgpu: boat predict works (it failed with "OffscreenCanvas is not defined"); saved on webgpu, loaded on wasm, ResNet50 gives the same probabilities',
  { skip },
  async () => {
    assert.equal(gpu.values.predictCode, 0);
    const [p] = gpu.values.predict as Predicted;
    assert.equal(p.error, undefined, `predict reported: ${p.error}`);
    assert.equal(p.top!.length, 5);
    const model = await loadBoatModel(String(gpu.values.saved));
    assert.equal(model.info.inputSize, SIZE);
    const onWasm = await predictImage(model, p.file, 5);
    model.dispose();
    assert.equal(onWasm.top[0].class, p.top![0].class, 'same top-1');
    // Every class' probability, in the order of the webgpu run: ResNet50 inference on both backends, same weights.
    const gpuP = Object.fromEntries(p.top!.map((t) => [t.class, t.probability]));
    let worst = 0;
    for (const t of onWasm.top) worst = Math.max(worst, Math.abs(t.probability - gpuP[t.class]));
    assert.ok(worst < 1e-4, `probabilities differ by up to ${worst}`);
    assert.ok(p.top![0].probability < 1 - 1e-4, 'not a saturated softmax, so the comparison means something');
    // The wasm run of the whole scenario (its own gradient and step) predicts the same class.
    const [w] = wasm.values.predict as Predicted;
    assert.equal(w.top![0].class, p.top![0].class);
    console.log(`probabilities: largest difference ${worst.toExponential(2)}`);
  },
);

test("webgpu: Grad-CAM equals wasm's", { skip }, () => {
  assert.equal(gpu.values['gradcam.size'], 8);
  assert.equal(Math.max(...gpu.arrays['gradcam.heatmap']), 1);
  assertClose('gradcam.heatmap', 1e-4);
  assertClose('gradcam.probs', 1e-5);
});

test('webgpu: numTensors is flat: every phase leaves what it found, on both backends', { skip }, () => {
  for (const [name, r] of [
    ['webgpu', gpu],
    ['wasm', wasm],
  ] as const) {
    const c = r.counts;
    assert.deepEqual(
      [c.batchNorm, c.tiny, c.demoTraining, c.finetune, c.predict],
      [c.start, c.start, c.start, c.start, c.start],
      `${name}: ${JSON.stringify(c)}`,
    );
    assert.ok(c.load > c.start, 'the ResNet50 weights were counted');
  }
  assert.equal(tf.getBackend(), 'wasm');
});
