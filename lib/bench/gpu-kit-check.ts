/**
 * The GPU kit's program (scripts/gpu-kit.js bundles it with esbuild into a kit with its own Node,
 * dawn.node and Vulkan loader; the kit's run.sh starts it). It prints the WebGPU adapter, ResNet50
 * forward and train-step img/s on WebGPU at the given batches, the same on the CPU engine for the
 * ratio, and a correctness check: log-probabilities of a fixed input against the reference the kit
 * stored when it was made (computed on wasm).
 *
 * The weights are random but deterministic (a seeded generator, not tfjs' initializers), so that the
 * reference needs no 100 MB of pretrained weights in the kit.
 *   node check.js [--size 224] [--reps 3] [--batches 8,32] [--cpu-batches 8] [--cpu-reps 1]
 *   node check.js --make-reference FILE     (when the kit is made; on wasm)
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '../engine/tf';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';

import { BoatModel, buildHead, nllLoss, setInputSize } from '../model';
import { selectBackend } from '../engine';

/** Where the kit keeps its files (the bundle's folder). */
const KIT_DIR = process.env.BOAT_KIT_DIR || __dirname;
export const REFERENCE_SIZE = 32;
const REFERENCE_BATCH = 2;
const CLASSES = 5;

interface Options {
  size: number;
  reps: number;
  batches: number[];
  cpuBatches: number[];
  cpuReps: number;
  makeReference?: string;
}

function parseArgs(argv: string[]): Options {
  const o: Options = { size: 224, reps: 3, batches: [8, 32], cpuBatches: [8], cpuReps: 1 };
  const count = (flag: string, v: string | undefined, min: number): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min)
      throw new Error(`${flag} needs a whole number of at least ${min}, got "${v ?? ''}"`);
    return n;
  };
  const list = (flag: string, v: string | undefined): number[] => (v ?? '').split(',').map((s) => count(flag, s, 1));
  for (let i = 0; i < argv.length; i++) {
    const [flag, v] = [argv[i], argv[i + 1]];
    if (flag === '--size') o.size = count(flag, v, 32);
    else if (flag === '--reps') o.reps = count(flag, v, 1);
    else if (flag === '--batches') o.batches = list(flag, v);
    else if (flag === '--cpu-batches') o.cpuBatches = v === 'none' ? [] : list(flag, v);
    else if (flag === '--cpu-reps') o.cpuReps = count(flag, v, 1);
    else if (flag === '--make-reference') o.makeReference = v;
    else
      throw new Error(
        `unknown option "${flag}" (options: --size N --reps N --batches 8,32 --cpu-batches 8|none --cpu-reps N)`,
      );
    i++;
  }
  return o;
}

/** A deterministic generator (LCG), the same numbers on every machine and backend. */
function seeded(n: number, seed: number, scale: number): Float32Array {
  let s = (seed * 2654435761 + 1) >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = ((s / 4294967296) * 2 - 1) * scale;
  }
  return out;
}

/** ResNet50 (Keras' topology, stored in the kit) at `size` px with seeded weights, cut at avg_pool, plus the tutorial's head. */
export async function randomResNet50(size: number): Promise<BoatModel> {
  const topology = JSON.parse(
    fs.readFileSync(path.join(KIT_DIR, 'resnet50-topology.json'), 'utf8'),
  ) as tf.serialization.ConfigDict;
  setInputSize(topology, size);
  const full = await tf.models.modelFromJSON({ modelTopology: topology });
  full.weights.forEach((w, i) => {
    const shape = w.shape as number[];
    const n = shape.reduce((a, b) => a * b, 1);
    const name = w.originalName;
    let values: Float32Array;
    if (/moving_variance|gamma/.test(name)) values = seeded(n, i, 0.1).map((v) => 1 + v);
    else if (/moving_mean|beta|bias/.test(name)) values = seeded(n, i, 0.1);
    else values = seeded(n, i, Math.sqrt(3 / (n / shape[shape.length - 1]))); // variance 1/fan-in
    const t = tf.tensor(values, shape);
    w.write(t); // the variable takes its own reference
    t.dispose();
  });
  const pool = full.getLayer('avg_pool');
  const backbone = tf.model({ inputs: full.inputs, outputs: pool.output, name: 'backbone' });
  const head = buildHead(CLASSES, { seed: 7, dropout: 0 });
  head.weights.forEach((w, i) => {
    const t = tf.tensor(
      seeded(
        (w.shape as number[]).reduce((a, b) => a * b, 1),
        1000 + i,
        0.05,
      ),
      w.shape as number[],
    );
    w.write(t);
    t.dispose();
  });
  return new BoatModel(
    backbone,
    head,
    {
      classes: ['a', 'b', 'c', 'd', 'e'],
      preprocessing: 'caffe',
      inputSize: size,
      weightsId: 'random',
      weightsChecksum: '',
    },
    'finetune',
  );
}

function fixedInput(batch: number, size: number): tf.Tensor4D {
  return tf.tensor4d(seeded(batch * size * size * 3, 99, 60), [batch, size, size, 3]);
}

/** Log-probabilities of the fixed input on the active backend. */
async function referenceLogProbs(): Promise<Float32Array> {
  const model = await randomResNet50(REFERENCE_SIZE);
  const x = fixedInput(REFERENCE_BATCH, REFERENCE_SIZE);
  const out = model.forward(x);
  const values = Float32Array.from(await out.data());
  tf.dispose([x, out]);
  model.dispose();
  return values;
}

async function imagesPerSecond(batch: number, reps: number, step: () => Promise<void>): Promise<number> {
  await step(); // warm-up: shaders compiled, buffers allocated
  const t = Date.now();
  for (let i = 0; i < reps; i++) await step();
  return (batch * reps * 1000) / Math.max(1, Date.now() - t);
}

async function measure(label: string, size: number, batches: number[], reps: number): Promise<Record<string, number>> {
  const model = await randomResNet50(size);
  const out: Record<string, number> = {};
  for (const batch of batches) {
    const x = tf.randomNormal<tf.Rank.R4>([batch, size, size, 3], 0, 50, 'float32', 1);
    const y = tf.tensor1d(
      Array.from({ length: batch }, (_, i) => i % CLASSES),
      'int32',
    );
    out[`forward${batch}`] = await imagesPerSecond(batch, reps, async () => {
      const p = model.forward(x);
      await p.data();
      p.dispose();
    });
    console.log(`${label}: forward, batch ${batch}, ${size} px: ${out[`forward${batch}`].toFixed(2)} img/s`);
    const optimizer = tf.train.momentum(0.001, 0.9);
    out[`train${batch}`] = await imagesPerSecond(batch, reps, async () => {
      const loss = optimizer.minimize(() => nllLoss(model.forward(x, true), y), true, model.trainableVariables())!;
      await loss.data();
      loss.dispose();
    });
    optimizer.dispose();
    console.log(
      `${label}: train step, batch ${batch}, ${size} px: ${out[`train${batch}`].toFixed(2)} img/s; tensors ${tf.memory().numTensors}`,
    );
    tf.dispose([x, y]);
  }
  model.dispose();
  return out;
}

function compare(reference: number[], actual: Float32Array): { maxAbs: number; sameTop1: boolean } {
  let maxAbs = 0;
  for (let i = 0; i < reference.length; i++) maxAbs = Math.max(maxAbs, Math.abs(reference[i] - actual[i]));
  const top = (a: ArrayLike<number>, row: number): number => {
    let best = 0;
    for (let c = 1; c < CLASSES; c++) if (a[row * CLASSES + c] > a[row * CLASSES + best]) best = c;
    return best;
  };
  const rows = reference.length / CLASSES;
  const sameTop1 = Array.from({ length: rows }, (_, r) => top(reference, r) === top(actual, r)).every(Boolean);
  return { maxAbs, sameTop1 };
}

export async function runCheck(argv: string[]): Promise<number> {
  const o = parseArgs(argv);
  tf.env().set('PROD', true);
  setWasmPaths(KIT_DIR + path.sep); // the kit's copies of the .wasm files
  if (o.makeReference) {
    const backend = await selectBackend('wasm');
    const values = await referenceLogProbs();
    fs.writeFileSync(
      o.makeReference,
      JSON.stringify({
        backend: backend.line,
        size: REFERENCE_SIZE,
        batch: REFERENCE_BATCH,
        logProbs: Array.from(values),
      }) + '\n',
    );
    return 0;
  }
  const reference = JSON.parse(fs.readFileSync(path.join(KIT_DIR, 'reference.json'), 'utf8')) as {
    backend: string;
    logProbs: number[];
  };
  let ok = true;
  const gpu = await selectBackend('webgpu');
  console.log(gpu.line);
  const actual = await referenceLogProbs();
  const { maxAbs, sameTop1 } = compare(reference.logProbs, actual);
  const pass = sameTop1 && maxAbs < 1e-3;
  ok &&= pass;
  console.log(
    `correctness: log-probabilities of a fixed ${REFERENCE_BATCH}×${REFERENCE_SIZE}px input vs the kit's reference (${reference.backend}): max |diff| ${maxAbs.toExponential(2)}, top-1 ${sameTop1 ? 'same' : 'DIFFERENT'}: ${pass ? 'PASS' : 'FAIL'} (tolerance 1e-3)`,
  );
  const onGpu = await measure('webgpu', o.size, o.batches, o.reps);
  let onCpu: Record<string, number> = {};
  if (o.cpuBatches.length > 0) {
    const cpu = await selectBackend('wasm');
    console.log(`CPU engine: ${cpu.line}`);
    onCpu = await measure('cpu', o.size, o.cpuBatches, o.cpuReps);
    const base = o.cpuBatches[0];
    for (const batch of o.batches) {
      console.log(
        `ratio webgpu batch ${batch} / cpu batch ${base}: forward ${(onGpu[`forward${batch}`] / onCpu[`forward${base}`]).toFixed(2)}×, train step ${(onGpu[`train${batch}`] / onCpu[`train${base}`]).toFixed(2)}×`,
      );
    }
  }
  console.log(
    `summary: ${JSON.stringify({ adapter: gpu.details, size: o.size, reps: o.reps, webgpu: onGpu, cpu: onCpu, correctness: { maxAbs, sameTop1, pass } })}`,
  );
  return ok ? 0 : 1;
}

/** The bundle's entry: runs the check with the command line, exits with its status. */
export function gpuKitMain(): void {
  runCheck(process.argv.slice(2)).then(
    (code) => process.exit(code), // Dawn's instance would keep the event loop alive
    (err: Error) => {
      console.error(`error: ${err.message.split('\n')[0]}`);
      process.exit(1);
    },
  );
}
