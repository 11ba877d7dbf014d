/**
 * Backend selection: native TensorFlow (tfjs-node-gpu / tfjs-node) when it loads, else WebGPU when a
 * real GPU answers (webgpu.ts; a software adapter only when forced), else WebAssembly (SIMD, with the native kernels when built), else the
 * pure-JS cpu backend. BOAT_BACKEND=tensorflow|webgpu|wasm|cpu forces one.
 */
import * as os from 'node:os';
import * as tf from './tf';

import { errorLine, UserError } from '../util';
import { installWasmKernels } from './wasm-kernels';
import { installLeanBackprop } from './lean-backprop';
import { startThreadedWasm } from './wasm-threads';
import { installNativeKernels } from './native-kernels';
import { AdapterInfo, adapterName, startWebgpu } from './webgpu';
import { applyPrecision, Precision, PrecisionChoice, precisionAsked, requestedPrecision } from './precision';

export type BackendName = 'tensorflow' | 'webgpu' | 'wasm' | 'cpu';

export interface BackendInfo {
  name: BackendName;
  /** What it can do, e.g. "SIMD, 1 thread" or "CUDA GPU". */
  details: string;
  /** The line the tutorial prints as "Using cuda device". */
  line: string;
  /** Threads it computes with (what the benchmark gives PyTorch too). */
  threads: number;
  /** wasm only: the native kernels' description ("oneDNN 2.6.3, 2 threads"), or why there are none. */
  native?: { description: string } | { reason: string };
  /** What the convolutions and matrix products compute in (precision.ts). */
  precision: Precision;
}

interface Started {
  details: string;
  threads: number;
  native?: { description: string } | { reason: string };
}

const ORDER: BackendName[] = ['tensorflow', 'webgpu', 'wasm', 'cpu'];
let resolved: Omit<BackendInfo, 'precision'> | null = null;

function tryRequire(name: string): boolean {
  try {
    require(name);
    return true;
  } catch {
    return false;
  }
}

async function tryTensorflow(): Promise<Started | null> {
  // node_modules/@tensorflow/tfjs-node may be danfojs' alias of plain tfjs, so check that the
  // native "tensorflow" backend really registered.
  const gpu = tryRequire('@tensorflow/tfjs-node-gpu');
  if (!gpu) tryRequire('@tensorflow/tfjs-node');
  if (!tf.findBackendFactory('tensorflow')) return null;
  if (!(await tf.setBackend('tensorflow'))) return null;
  return { details: gpu ? 'native TensorFlow, GPU build' : 'native TensorFlow, CPU', threads: os.cpus().length };
}

/** XNNPACK threads for wasm: BOAT_THREADS, else one per core (the threaded build has 8 workers). */
export function wasmThreadsWanted(env = process.env.BOAT_THREADS): number {
  if (env !== undefined && env !== '') {
    const n = Number(env);
    if (!Number.isInteger(n) || n < 1 || n > 8)
      throw new UserError(`BOAT_THREADS must be a whole number from 1 to 8, got "${env}"`);
    return n;
  }
  return Math.min(8, Math.max(1, os.cpus().length));
}

async function tryWasm(): Promise<Started | null> {
  try {
    require('@tensorflow/tfjs-backend-wasm'); // a literal name, so that a bundler (the GPU kit's) includes it
  } catch {
    return null;
  }
  const wanted = wasmThreadsWanted();
  let threads: number | null = null;
  if (wanted > 1) {
    try {
      threads = await startThreadedWasm(wanted);
    } catch (err) {
      process.stderr.write(`note: wasm threads unavailable (${errorLine(err)}); using one thread\n`);
    }
  }
  if (threads === null) {
    tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false); // the single-threaded build
    if (!(await tf.setBackend('wasm'))) return null;
    threads = 1;
  }
  installWasmKernels();
  installLeanBackprop();
  const simd = await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT');
  const native = installNativeKernels(wanted);
  const kernels = 'description' in native ? `; native kernels: ${native.description}` : '';
  return {
    details: `${simd ? 'SIMD' : 'no SIMD'}, ${threads} thread${threads === 1 ? '' : 's'}${kernels}`,
    threads,
    native,
  };
}

/** Why the last attempt at a backend failed, for the error when it was forced. */
const whyNot = new Map<BackendName, string>();

async function tryWebgpu(forced: boolean): Promise<Started | null> {
  const started = await startWebgpu({ forced });
  if ('reason' in started) {
    whyNot.set('webgpu', started.reason);
    return null;
  }
  if (started.software) process.stderr.write(`warning: ${softwareAdapterWarning(started.adapter)}\n`);
  return { details: started.details, threads: os.cpus().length };
}

export function softwareAdapterWarning(adapter: AdapterInfo): string {
  return `the WebGPU adapter is a software renderer (${adapterName(adapter)}): the GPU code path runs, on the CPU, far slower than the wasm backend`;
}

async function tryCpu(): Promise<Started | null> {
  return (await tf.setBackend('cpu')) ? { details: 'pure JavaScript, slow', threads: 1 } : null;
}

/** The backend with `choice` applied: the line says what runs unless it is plain fp32. */
function withPrecision(base: Omit<BackendInfo, 'precision'>, choice: PrecisionChoice, asked: boolean): BackendInfo {
  const { precision, note } = applyPrecision(choice, base.name, asked);
  const details = note ? `${base.details}; ${note}` : base.details;
  return { ...base, details, precision, line: `Using ${base.name} backend (${details})` };
}

/**
 * Picks and activates the backend once per process; later calls return the same backend, with the
 * precision asked for now (`precision`, else --precision or BOAT_PRECISION: precision.ts).
 * Quietens tfjs' console advice about installing tfjs-node (it cannot be installed offline).
 */
export async function selectBackend(
  forced = process.env.BOAT_BACKEND,
  precision?: PrecisionChoice,
): Promise<BackendInfo> {
  const choice = precision ?? requestedPrecision();
  // A precision passed here, by flag or in BOAT_PRECISION was asked for; only the default stays quiet about fp32.
  const asked = precision !== undefined || precisionAsked();
  if (resolved && (!forced || forced === resolved.name)) return withPrecision(resolved, choice, asked);
  tf.env().set('PROD', true);
  if (forced && !ORDER.includes(forced as BackendName)) {
    throw new UserError(`BOAT_BACKEND must be one of ${ORDER.join(', ')}, got "${forced}"`);
  }
  const candidates = forced ? [forced as BackendName] : ORDER;
  for (const name of candidates) {
    const started =
      name === 'tensorflow'
        ? await tryTensorflow()
        : name === 'webgpu'
          ? await tryWebgpu(forced === 'webgpu')
          : name === 'wasm'
            ? await tryWasm()
            : await tryCpu();
    if (started) {
      await tf.ready();
      resolved = { name, ...started, line: `Using ${name} backend (${started.details})` };
      return withPrecision(resolved, choice, asked);
    }
  }
  const why = forced ? whyNot.get(forced as BackendName) : undefined;
  throw new UserError(
    forced
      ? `backend "${forced}" is not available on this machine${why ? `: ${why}` : ''}`
      : 'no TensorFlow.js backend could be started',
  );
}

/**
 * Whether the active backend can fine-tune convolutions (it needs a Conv2DBackpropFilter kernel).
 * tfjs' wasm backend lacks it (tensorflow/tfjs#8474); selectBackend installs this project's.
 */
export function fineTuneSupport(): { ok: boolean; reason: string } {
  const backend = tf.getBackend();
  return tf.getKernel('Conv2DBackpropFilter', backend)
    ? { ok: true, reason: `the ${backend} backend has convolution gradients` }
    : {
        ok: false,
        reason: `the ${backend} backend has no Conv2DBackpropFilter kernel yet (tensorflow/tfjs#8474), so it cannot train convolutions; fine-tuning runs on the tensorflow and cpu backends`,
      };
}
