/**
 * TensorFlow.js, as this project uses it: the core with every kernel's gradient and the chained ops,
 * the Layers API and the CPU backend. The `@tensorflow/tfjs` bundle package would add the WebGL backend,
 * tf.data and the converter, none of which runs in Node here, plus browser bundles and source maps
 * (150 MB installed). Import TensorFlow.js from this module only, so every part of the project shares
 * one engine.
 */
import '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
// Types only: brings the chained ops' declarations (tensor.add(...)) into the program; the code is registered below.
import type {} from '@tensorflow/tfjs-core/dist/public/chained_ops/register_all_chained_ops';

// Built by scripts/build-tf.js (npm run build): tfjs-core's CommonJS build registers no gradients and
// no chained ops (tensor.add(...)) by itself.
require('./tf-registrations.js');

// The whole TensorFlow.js API, as tf.* everywhere: its surface is the packages', not ours to list.
/* eslint-disable no-restricted-syntax */
export * from '@tensorflow/tfjs-core';
export * from '@tensorflow/tfjs-layers';
/* eslint-enable no-restricted-syntax */
