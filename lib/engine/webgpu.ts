/**
 * WebGPU in Node, for a GPU without CUDA: Dawn (npm `webgpu`, a prebuilt dawn.node in the package)
 * gives Node a `navigator.gpu`, and @tensorflow/tfjs-backend-webgpu runs on it.
 *
 * Dawn needs a Vulkan driver (libvulkan1 plus an ICD). A real GPU's driver is used automatically. A
 * software one (SwiftShader, which Chromium ships; Mesa's lavapipe/llvmpipe) runs the same shaders on
 * the CPU, far slower than the wasm backend, so it is only used when BOAT_BACKEND=webgpu forces it
 * (the tests do, to check the GPU code path without a GPU). Without a GPU device node Dawn is not
 * tried at all unless forced, because it prints Vulkan warnings to stderr before it finds no adapter.
 */
import * as fs from 'node:fs';
import * as tf from './tf';

interface Dawn {
  create(flags: string[]): { requestAdapter(options?: { powerPreference?: string }): Promise<GpuAdapter | null> };
  globals: Record<string, unknown>;
}

export interface AdapterInfo {
  vendor?: string;
  architecture?: string;
  device?: string;
  description?: string;
  isFallbackAdapter?: boolean;
}

interface GpuAdapter {
  info?: AdapterInfo;
  /** Older WebGPU drafts put it on the adapter; newer ones on adapter.info. */
  isFallbackAdapter?: boolean;
}

/** Device nodes that mean a GPU may be there (NVIDIA, DRM render nodes, AMD compute). */
const GPU_DEVICE_NODES = ['/dev/nvidia0', '/dev/dri/renderD128', '/dev/kfd'];

export function gpuDevicePresent(nodes = GPU_DEVICE_NODES): boolean {
  return nodes.some((node) => fs.existsSync(node));
}

/** Whether the Vulkan loader is installed (Dawn's Linux backend); without it Dawn only prints a warning. */
function vulkanLoaderPresent(): boolean {
  if (process.platform !== 'linux') return true;
  const dirs = ['/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib64', '/usr/lib', '/usr/local/lib'];
  const fromEnv = (process.env.LD_LIBRARY_PATH ?? '').split(':').filter(Boolean);
  return [...fromEnv, ...dirs].some((dir) => fs.existsSync(`${dir}/libvulkan.so.1`));
}

/** dawn.node: BOAT_DAWN_NODE names the file (the GPU kit unpacks its own), else the npm package's. */
function loadDawn(): Dawn | null {
  const platform = process.platform === 'darwin' ? 'darwin-universal' : `${process.platform}-${process.arch}`;
  try {
    return require(process.env.BOAT_DAWN_NODE || `webgpu/dist/${platform}/dawn.node`) as Dawn;
  } catch {
    return null;
  }
}

const SOFTWARE_RENDERERS = /swiftshader|lavapipe|llvmpipe|softpipe|software/i;

/** A software (CPU-emulated) adapter: the fallback flag, or a known software renderer's name. */
export function isSoftwareAdapter(info: AdapterInfo, adapterFlag?: boolean): boolean {
  if (info.isFallbackAdapter || adapterFlag) return true;
  return [info.vendor, info.architecture, info.device, info.description].some(
    (s) => s !== undefined && SOFTWARE_RENDERERS.test(s),
  );
}

export function adapterName(info: AdapterInfo): string {
  return [info.vendor, info.architecture, info.device || info.description].filter(Boolean).join(' ');
}

/** Copies the getters of Dawn's GPUAdapterInfo (they live on its prototype, so spreading it gives nothing). */
function readInfo(adapter: GpuAdapter): AdapterInfo {
  const i = adapter.info ?? {};
  return {
    vendor: i.vendor,
    architecture: i.architecture,
    device: i.device,
    description: i.description,
    isFallbackAdapter: i.isFallbackAdapter,
  };
}

export interface WebgpuStartOptions {
  /** BOAT_BACKEND=webgpu: try without a GPU device node, and accept a software adapter (with a warning). */
  forced: boolean;
  /** Device nodes that count as a GPU (tests point this at a file of their own). */
  deviceNodes?: string[];
}

export type WebgpuStart =
  { details: string; adapter: AdapterInfo; software: boolean } | { reason: string; adapter?: AdapterInfo };

/** Starts tfjs' webgpu backend on Dawn, or says why it did not. */
export async function startWebgpu({ forced, deviceNodes }: WebgpuStartOptions): Promise<WebgpuStart> {
  if (!forced && !gpuDevicePresent(deviceNodes)) return { reason: 'no GPU device node' };
  if (!vulkanLoaderPresent())
    return { reason: "no Vulkan loader (apt-get install libvulkan1, plus the GPU vendor's Vulkan driver)" };
  const dawn = loadDawn();
  if (!dawn) return { reason: 'the optional npm package "webgpu" (Dawn) is not installed for this platform' };
  const gpu = dawn.create([]);
  const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (!adapter)
    return {
      reason:
        'no WebGPU adapter: it needs a Vulkan driver for the GPU (apt-get install libvulkan1 and the vendor driver)',
    };
  const info = readInfo(adapter);
  const software = isSoftwareAdapter(info, adapter.isFallbackAdapter);
  const name = adapterName(info) || 'unnamed adapter';
  if (software && !forced)
    return {
      reason: `the only WebGPU adapter is a software renderer (${name}), slower than wasm; BOAT_BACKEND=webgpu forces it`,
      adapter: info,
    };
  Object.assign(globalThis, dawn.globals); // GPUBufferUsage, GPUMapMode, … which the backend reads as globals
  const navigator = { ...((globalThis as { navigator?: object }).navigator ?? {}), gpu };
  Object.defineProperty(globalThis, 'navigator', { value: navigator, configurable: true, writable: true });
  require('@tensorflow/tfjs-backend-webgpu'); // registers "webgpu" only when navigator.gpu exists
  if (!(await tf.setBackend('webgpu')))
    return { reason: 'tfjs could not start its webgpu backend on this adapter', adapter: info };
  refuseSyncReads();
  return { details: `WebGPU via Dawn: ${name}${software ? ', software renderer' : ''}`, adapter: info, software };
}

interface WebgpuBackendInternals {
  tensorMap: { get(dataId: object): { values?: unknown; dtype: string } | undefined };
  readSync(dataId: object): unknown;
}

export const SYNC_READ_MESSAGE =
  'a synchronous tensor read (dataSync/arraySync) on the webgpu backend: tfjs does it through OffscreenCanvas, which Node lacks; this step needs an asynchronous read (await tensor.data())';

/**
 * tfjs' webgpu readSync copies GPU buffers through an OffscreenCanvas, which Node does not have, so every
 * dataSync() failed with "OffscreenCanvas is not defined". The library reads asynchronously on this
 * backend; anything left that reads synchronously fails with a sentence that says so. Tensors whose
 * values are already on the CPU (the backend's own small-op shortcuts read those) still read.
 */
function refuseSyncReads(): void {
  const backend = tf.backend() as unknown as WebgpuBackendInternals;
  const original = backend.readSync.bind(backend);
  backend.readSync = (dataId: object) => {
    const data = backend.tensorMap.get(dataId);
    if (data && data.values == null && data.dtype !== 'string') throw new Error(SYNC_READ_MESSAGE);
    return original(dataId);
  };
}
