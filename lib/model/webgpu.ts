/**
 * WebGPU in Node, for a GPU without CUDA: Dawn (npm `webgpu`, a prebuilt dawn.node in the package)
 * gives Node a `navigator.gpu`, and @tensorflow/tfjs-backend-webgpu runs on it.
 *
 * Dawn needs a real GPU with a Vulkan driver (libvulkan1 plus the vendor's ICD; it rejects Mesa's
 * CPU-only lavapipe). Without a GPU device node it is not tried at all unless asked for
 * (BOAT_BACKEND=webgpu), because Dawn prints Vulkan warnings to stderr before it finds no adapter.
 */
import * as fs from 'node:fs';
import * as tf from '../engine/tf';

interface Dawn {
  create(flags: string[]): { requestAdapter(options?: { powerPreference?: string }): Promise<GpuAdapter | null> };
  globals: Record<string, unknown>;
}

interface GpuAdapter {
  info?: { vendor?: string; architecture?: string; device?: string; description?: string };
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

function loadDawn(): Dawn | null {
  const platform = process.platform === 'darwin' ? 'darwin-universal' : `${process.platform}-${process.arch}`;
  try {
    return require(`webgpu/dist/${platform}/dawn.node`) as Dawn;
  } catch {
    return null;
  }
}

/**
 * Starts tfjs' webgpu backend on Dawn, or says why it cannot. `forced`: try even without a GPU
 * device node.
 */
export async function startWebgpu(forced: boolean): Promise<{ details: string } | { reason: string }> {
  if (!forced && !gpuDevicePresent()) return { reason: 'no GPU device node' };
  if (!vulkanLoaderPresent()) return { reason: 'no Vulkan loader (apt-get install libvulkan1, plus the GPU vendor\'s Vulkan driver)' };
  const dawn = loadDawn();
  if (!dawn) return { reason: 'the optional npm package "webgpu" (Dawn) is not installed for this platform' };
  const gpu = dawn.create([]);
  const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (!adapter) return { reason: 'no WebGPU adapter: it needs a GPU with a Vulkan driver (apt-get install libvulkan1 and the vendor driver; Dawn rejects lavapipe)' };
  Object.assign(globalThis, dawn.globals); // GPUBufferUsage, GPUMapMode, … which the backend reads as globals
  const navigator = { ...((globalThis as { navigator?: object }).navigator ?? {}), gpu };
  Object.defineProperty(globalThis, 'navigator', { value: navigator, configurable: true, writable: true });
  require('@tensorflow/tfjs-backend-webgpu'); // registers "webgpu" only when navigator.gpu exists
  if (!(await tf.setBackend('webgpu'))) return { reason: 'tfjs could not start its webgpu backend on this adapter' };
  const info = adapter.info ?? {};
  const name = [info.vendor, info.architecture, info.device || info.description].filter(Boolean).join(' ');
  return { details: `WebGPU via Dawn${name ? `: ${name}` : ''}` };
}
