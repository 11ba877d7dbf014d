/**
 * Kernels that let tfjs-backend-wasm 4.22 train a ResNet50:
 *
 * - Conv2DBackpropFilter, which it lacks (tensorflow/tfjs#8474), and Conv2DBackpropInput, whose
 *   own version is ~10× slower than the forward conv. Both come from conv-gradients.ts.
 * - Identity without a copy. tfjs clones every tensor it saves for the backward pass, and wasm's
 *   Identity copies the buffer, so a train step held each activation twice. The cpu and webgl
 *   backends share the buffer (tensors are immutable); this does the same.
 */
import * as tf from '@tensorflow/tfjs';

import { BackpropAttrs, conv2dFilterGradient, conv2dInputGradient, geometry } from './conv-gradients';

type Shape4D = [number, number, number, number];

/** Hands a tensor computed with ops back to the engine as a kernel output without leaking it. */
function asKernelOutput(t: tf.Tensor, backend: tf.KernelBackend): tf.TensorInfo {
  backend.incRef(t.dataId);
  const info = { dataId: t.dataId, shape: t.shape, dtype: t.dtype };
  t.dispose();
  return info;
}

/** Kernel inputs arrive as the op's tensors (ops pass them through runKernel unchanged). */
function asTensor4D(info: tf.TensorInfo | undefined, kernel: string): tf.Tensor4D {
  if (info instanceof tf.Tensor && info.rank === 4) return info as tf.Tensor4D;
  throw new Error(`${kernel}: expected a rank-4 tensor input`);
}

function checkChannelsLast(kernel: string, attrs: BackpropAttrs): void {
  if (attrs.dataFormat === 'NCHW') throw new Error(`${kernel} on wasm supports only NHWC (channelsLast) data`);
}

const kernels: tf.KernelConfig[] = [
  {
    kernelName: 'Conv2DBackpropFilter',
    backendName: 'wasm',
    kernelFunc: ({ inputs, backend, attrs }) => {
      const a = attrs as unknown as BackpropAttrs & { filterShape: Shape4D };
      checkChannelsLast('Conv2DBackpropFilter', a);
      const x = asTensor4D(inputs.x, 'Conv2DBackpropFilter');
      const dy = asTensor4D(inputs.dy, 'Conv2DBackpropFilter');
      return asKernelOutput(conv2dFilterGradient(x, dy, geometry(x.shape, a.filterShape, a)), backend as tf.KernelBackend);
    },
  },
  {
    kernelName: 'Conv2DBackpropInput',
    backendName: 'wasm',
    kernelFunc: ({ inputs, backend, attrs }) => {
      const a = attrs as unknown as BackpropAttrs & { inputShape: Shape4D };
      checkChannelsLast('Conv2DBackpropInput', a);
      const dy = asTensor4D(inputs.dy, 'Conv2DBackpropInput');
      const filter = asTensor4D(inputs.filter, 'Conv2DBackpropInput');
      return asKernelOutput(conv2dInputGradient(dy, filter, geometry(a.inputShape, filter.shape, a)), backend as tf.KernelBackend);
    },
  },
];

let installed = false;

/** Registers the kernels above for the wasm backend, replacing wasm's own where it has one. Idempotent. */
export function installWasmKernels(): void {
  if (installed) return;
  installed = true;
  const wasmIdentity = tf.getKernel('Identity', 'wasm');
  const identity: tf.KernelConfig = {
    kernelName: 'Identity',
    backendName: 'wasm',
    kernelFunc: (args) => {
      const x = args.inputs.x as tf.TensorInfo;
      if (x.dtype === 'string' && wasmIdentity) return wasmIdentity.kernelFunc(args);
      (args.backend as tf.KernelBackend).incRef(x.dataId);
      return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
    },
  };
  for (const config of [...kernels, identity]) {
    if (tf.getKernel(config.kernelName, 'wasm')) tf.unregisterKernel(config.kernelName, 'wasm');
    tf.registerKernel(config);
  }
}
