/**
 * Kernels that let tfjs-backend-wasm 4.22 train a ResNet50:
 *
 * - Conv2DBackpropFilter, which it lacks (tensorflow/tfjs#8474), and Conv2DBackpropInput, whose
 *   own version is ~10× slower than the forward conv. Both come from conv-gradients.ts.
 * - Identity without a copy. tfjs clones every tensor it saves for the backward pass, and wasm's
 *   Identity copies the buffer, so a train step held each activation twice. The cpu and webgl
 *   backends share the buffer (tensors are immutable); this does the same.
 * - A training BatchNorm's moving-statistics update as one kernel (moving-stats.ts).
 */
import * as tf from './tf';

import { BackpropAttrs, conv2dFilterGradient, conv2dInputGradient, geometry } from './conv-gradients';
import { movingStatsConfig } from './moving-stats';

/** Hands a tensor computed with ops back to the engine as a kernel output without leaking it. */
function asKernelOutput(t: tf.Tensor, backend: tf.KernelBackend): tf.TensorInfo {
  backend.incRef(t.dataId);
  const info = { dataId: t.dataId, shape: t.shape, dtype: t.dtype };
  t.dispose();
  return info;
}

type Shape4D = [number, number, number, number];
type BackpropKernelAttrs = BackpropAttrs & { filterShape: Shape4D; inputShape: Shape4D };

/**
 * A wasm kernel computed with tf ops on 4-D NHWC inputs. Kernel inputs arrive as the op's tensors
 * (ops pass them through runKernel unchanged).
 */
function backpropKernel(
  kernelName: string,
  compute: (input: (name: string) => tf.Tensor4D, attrs: BackpropKernelAttrs) => tf.Tensor,
): tf.KernelConfig {
  return {
    kernelName,
    backendName: 'wasm',
    kernelFunc: ({ inputs, backend, attrs }) => {
      const a = attrs as unknown as BackpropKernelAttrs;
      if (a.dataFormat === 'NCHW') throw new Error(`${kernelName} on wasm supports only NHWC (channelsLast) data`);
      const input = (name: string): tf.Tensor4D => {
        const t = inputs[name];
        if (t instanceof tf.Tensor && t.rank === 4) return t as tf.Tensor4D;
        throw new Error(`${kernelName}: expected a rank-4 tensor input`);
      };
      return asKernelOutput(compute(input, a), backend as tf.KernelBackend);
    },
  };
}

const kernels: tf.KernelConfig[] = [
  backpropKernel('Conv2DBackpropFilter', (input, a) => {
    const x = input('x');
    return conv2dFilterGradient(x, input('dy'), geometry(x.shape, a.filterShape, a));
  }),
  backpropKernel('Conv2DBackpropInput', (input, a) => {
    const filter = input('filter');
    return conv2dInputGradient(input('dy'), filter, geometry(a.inputShape, filter.shape, a));
  }),
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
  for (const config of [...kernels, identity, movingStatsConfig]) {
    if (tf.getKernel(config.kernelName, 'wasm')) tf.unregisterKernel(config.kernelName, 'wasm');
    tf.registerKernel(config);
  }
}
