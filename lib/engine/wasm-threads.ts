/**
 * Multi-threaded wasm in Node.
 *
 * tfjs-backend-wasm ships a threaded SIMD build (XNNPACK on a pthreadpool of Emscripten workers),
 * but refuses it in Node (tensorflow/tfjs#3830) for three reasons, each worked around here during
 * backend start-up only:
 *  1. WASM_HAS_MULTITHREAD_SUPPORT is hard-wired to false in Node: we set it.
 *  2. It hands the pthread worker script and the module factory over as Blob URLs, which Node's
 *     worker_threads cannot load. We write the worker script (Emscripten's, which supports Node)
 *     to a file, and point it at the factory file inside the package.
 *  3. Its C++ caps the pool at half of navigator.hardwareConcurrency (hyper-threads), which is
 *     os.cpus() in Node: one thread on a 2-core machine. We report 2× the wanted count meanwhile.
 * The workers are unref'd so that they never keep a finished process alive.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from './tf';

import { sha256Hex, writeFileAtomic } from '../util';

interface WasmModule {
  setThreadsCount(n: number): void;
  getThreadsCount(): number;
}

interface NodeWorker {
  unref(): void;
}

interface WasmBackendInternals {
  wasm?: { PThread?: { unusedWorkers: NodeWorker[]; runningWorkers: NodeWorker[] } };
}

const PACKAGE = '@tensorflow/tfjs-backend-wasm';
// The module object itself: `import * as os` gives a read-only copy, and Emscripten calls this one.
const nodeOs = require('node:os') as { cpus: () => os.CpuInfo[] };

/**
 * A file of the package's wasm-out folder. BOAT_WASM_OUT names a folder with copies instead: the GPU kit
 * bundles tfjs into one file, but the pthread workers load the module factory from a file of its own.
 */
function wasmOutFile(name: string): string {
  const dir = process.env.BOAT_WASM_OUT;
  return dir ? path.join(dir, name) : require.resolve(`${PACKAGE}/wasm-out/${name}`);
}

/** The Emscripten pthread worker, written once per content to the temp folder. */
function workerScript(factoryFile: string): string {
  const { wasmWorkerContents } = require(wasmOutFile('tfjs-backend-wasm-threaded-simd.worker.js')) as {
    wasmWorkerContents: string;
  };
  // The worker asks URL.createObjectURL for the factory it received as a Blob: answer with the file.
  const source =
    `URL.createObjectURL = () => ${JSON.stringify(factoryFile)}; URL.revokeObjectURL = () => {};\n` +
    wasmWorkerContents.replace(/\n/g, '\\n'); // tfjs escapes the same way before making its Blob
  const hash = sha256Hex(source).slice(0, 16);
  const file = path.join(os.tmpdir(), `boat-wasm-worker-${hash}.js`);
  if (!fs.existsSync(file)) writeFileAtomic(file, source);
  return file;
}

/**
 * Starts the wasm backend with `threads` XNNPACK threads. Returns the thread count it got, or null
 * when the threaded build did not start (the caller then starts the single-threaded one).
 */
export async function startThreadedWasm(threads: number): Promise<number | null> {
  const wasm = require('@tensorflow/tfjs-backend-wasm') as WasmModule; // a literal name, so that a bundler includes it
  const factoryFile = wasmOutFile('tfjs-backend-wasm-threaded-simd.js');
  const worker = workerScript(factoryFile);
  // eslint-disable-next-line @typescript-eslint/unbound-method -- put back exactly as found, never called from here
  const saved = { blob: globalThis.Blob, createObjectURL: URL.createObjectURL, cpus: nodeOs.cpus };
  const cpus = saved.cpus();
  try {
    tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', true);
    wasm.setThreadsCount(threads);
    (globalThis as { Blob: unknown }).Blob = function PlaceholderBlob() {
      return {}; // only ever passed on to our worker, which ignores it (see workerScript)
    };
    URL.createObjectURL = () => worker;
    nodeOs.cpus = () => Array.from({ length: 2 * threads }, (_, i) => cpus[i % cpus.length]);
    if (!(await tf.setBackend('wasm'))) return null;
  } finally {
    globalThis.Blob = saved.blob;
    URL.createObjectURL = saved.createObjectURL;
    nodeOs.cpus = saved.cpus;
  }
  const pthreads = (tf.backend() as unknown as WasmBackendInternals).wasm?.PThread;
  for (const w of [...(pthreads?.unusedWorkers ?? []), ...(pthreads?.runningWorkers ?? [])]) w.unref();
  return wasm.getThreadsCount();
}
