/**
 * The exported page: loads the model next to it (boat.json, model/model.json) and classifies photos
 * that are opened, dropped, or named by ?image=URL. Backends: webgpu, webgl, wasm, the first that loads
 * and runs the model (?backend=NAME forces one). Bundled by scripts/build-web.js (esbuild).
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-webgl';
import '@tensorflow/tfjs-backend-webgpu';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { LayersModel, loadLayersModel } from '@tensorflow/tfjs-layers';

import type { ExportManifest } from '../boat-json';
import { MODEL_JSON } from '../boat-json';
import { evalCropPixels, normalizePixels, Ranked, topK } from '../preprocess';

const BACKENDS = ['webgpu', 'webgl', 'wasm'] as const;

interface Classifier {
  manifest: ExportManifest;
  model: LayersModel;
  backend: string;
}

const $ = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T;

function setStatus(text: string, error = false): void {
  const status = $('status');
  status.textContent = text;
  status.classList.toggle('error', error);
}

async function fetchJson<T>(url: string): Promise<T> {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
  return (await res.json()) as T;
}

/** The first backend that initialises, loads the model and runs it once. */
async function loadClassifier(forced: string | null): Promise<Classifier> {
  const manifest = await fetchJson<ExportManifest>('boat.json');
  setWasmPaths(new URL('wasm/', location.href).href);
  // Fetch the weights once; each backend tried gets them from memory.
  const artifacts = await tf.io.browserHTTPRequest(new URL(MODEL_JSON, location.href).href).load!();
  const order = forced ? [forced] : BACKENDS.filter((b) => b !== 'webgpu' || 'gpu' in navigator);
  const failures: string[] = [];
  for (const backend of order) {
    let model: LayersModel | undefined;
    try {
      if (!(await tf.setBackend(backend))) throw new Error('not available');
      await tf.ready();
      model = await loadLayersModel(tf.io.fromMemory(artifacts));
      const s = manifest.inputSize;
      const warm = tf.tidy(() => model!.predict(tf.zeros([1, s, s, 3])) as tf.Tensor);
      await warm.data();
      warm.dispose();
      return { manifest, model, backend };
    } catch (err) {
      model?.dispose();
      failures.push(`${backend}: ${(err as Error).message}`);
    }
  }
  throw new Error(`no TensorFlow.js backend could run the model (${failures.join('; ')})`);
}

/**
 * The photo as the model sees it: EXIF-oriented, decoded at full size, then Resize + CenterCrop with
 * PIL's bilinear filter in JS (lib/web/resample.ts), the library's own arithmetic; RGB bytes.
 */
async function cropPixels(blob: Blob, manifest: ExportManifest): Promise<Uint8Array> {
  const bitmap = await createImageBitmap(blob, {
    imageOrientation: 'from-image',
    premultiplyAlpha: 'none',
    colorSpaceConversion: 'default',
  });
  const canvas = document.createElement('canvas');
  canvas.width = bitmap.width;
  canvas.height = bitmap.height;
  const ctx = canvas.getContext('2d', { willReadFrequently: true })!;
  ctx.drawImage(bitmap, 0, 0);
  bitmap.close();
  const rgba = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
  const { resize, crop } = manifest.preprocessing;
  return evalCropPixels(rgba, canvas.width, canvas.height, 4, resize, crop);
}

async function classify(c: Classifier, blob: Blob): Promise<Ranked[]> {
  const pixels = await cropPixels(blob, c.manifest);
  const s = c.manifest.inputSize;
  const input = normalizePixels(pixels, 3, c.manifest.preprocessing);
  const probs = tf.tidy(() => c.model.predict(tf.tensor4d(input, [1, s, s, 3])) as tf.Tensor);
  const values = await probs.data();
  probs.dispose();
  return topK(values, c.manifest.classes, 3);
}

function card(name: string, blob: Blob): { root: HTMLElement; body: HTMLElement } {
  const root = document.createElement('article');
  root.className = 'card';
  const img = document.createElement('img');
  img.alt = name;
  img.src = URL.createObjectURL(blob);
  const body = document.createElement('div');
  body.className = 'body';
  const title = document.createElement('div');
  title.className = 'name';
  title.textContent = name;
  body.append(title);
  root.append(img, body);
  $('results').prepend(root);
  return { root, body };
}

function showBars(body: HTMLElement, top: Ranked[]): void {
  const list = document.createElement('div');
  list.className = 'bars';
  for (const t of top) {
    const row = document.createElement('div');
    row.className = 'bar';
    const pct = `${(100 * t.probability).toFixed(1)}%`;
    row.innerHTML =
      '<span class="label"></span><span class="track"><span class="fill"></span></span><span class="pct"></span>';
    (row.querySelector('.label') as HTMLElement).textContent = t.class;
    (row.querySelector('.label') as HTMLElement).title = t.class;
    (row.querySelector('.fill') as HTMLElement).style.width = `${Math.max(0.5, 100 * t.probability)}%`;
    (row.querySelector('.pct') as HTMLElement).textContent = pct;
    list.append(row);
  }
  body.append(list);
}

function setResult(c: Classifier, name: string, top: Ranked[]): void {
  const out = $('result');
  out.dataset.top1 = top[0].class;
  out.dataset.prob = top[0].probability.toFixed(6);
  out.dataset.backend = c.backend;
  out.dataset.source = name;
  out.dataset.top = JSON.stringify(top);
  out.textContent = `${name}: ${top[0].class} (${(100 * top[0].probability).toFixed(1)}%)`;
}

async function handle(c: Classifier, name: string, blob: Blob): Promise<void> {
  const { root, body } = card(name, blob);
  root.dataset.name = name;
  try {
    const top = await classify(c, blob);
    showBars(body, top);
    root.dataset.top1 = top[0].class;
    root.dataset.prob = top[0].probability.toFixed(6);
    root.dataset.top = JSON.stringify(top);
    setResult(c, name, top);
  } catch (err) {
    const e = document.createElement('div');
    e.className = 'error';
    e.textContent = `Could not classify this photo: ${(err as Error).message}`;
    body.append(e);
    root.dataset.error = (err as Error).message;
    $('result').dataset.error = `${name}: ${(err as Error).message}`;
  }
}

async function handleFiles(c: Classifier, files: FileList | File[]): Promise<void> {
  const out = $('result');
  out.dataset.state = 'busy';
  for (const f of Array.from(files)) await handle(c, f.name, f);
  out.dataset.state = 'done';
}

async function fetchImage(url: string): Promise<Blob> {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
  return res.blob();
}

async function main(): Promise<void> {
  const params = new URLSearchParams(location.search);
  const out = $('result');
  out.dataset.state = 'loading';
  let c: Classifier;
  try {
    c = await loadClassifier(params.get('backend'));
  } catch (err) {
    setStatus(`Could not load the model: ${(err as Error).message}`, true);
    out.dataset.state = 'error';
    out.dataset.error = (err as Error).message;
    return;
  }
  const m = c.manifest;
  setStatus(
    `${m.classes.length} classes (${m.classes.join(', ')}), ${m.inputSize} px, ${m.precision} weights · backend: ${c.backend}`,
  );
  out.dataset.backend = c.backend;
  out.dataset.state = 'ready';
  const input = $<HTMLInputElement>('file');
  input.disabled = false;
  input.addEventListener('change', () => {
    if (input.files?.length) void handleFiles(c, input.files);
  });
  const drop = $('drop');
  drop.addEventListener('dragover', (e) => {
    e.preventDefault();
    drop.classList.add('over');
  });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    drop.classList.remove('over');
    if (e.dataTransfer?.files.length) void handleFiles(c, e.dataTransfer.files);
  });
  // Hooks for automated checks and the console: classify a URL, or read the pixels the model gets.
  (window as unknown as { boat: unknown }).boat = {
    backend: c.backend,
    manifest: m,
    classifyUrl: async (url: string) => classify(c, await fetchImage(url)),
    cropPixels: async (url: string) => Array.from(await cropPixels(await fetchImage(url), m)),
    numTensors: () => tf.memory().numTensors,
  };
  const image = params.get('image');
  if (image) {
    out.dataset.state = 'busy';
    try {
      await handle(c, image, await fetchImage(image));
    } catch (err) {
      out.dataset.error = (err as Error).message;
      setStatus(`Could not load ${image}: ${(err as Error).message}`, true);
    }
    out.dataset.state = 'done';
  }
}

void main();
