#!/usr/bin/env node
// Times SGD steps of the whole ResNet50 + head (fine-tune mode) on one backend.
//   node bench/measure-train-step.js [backend=cpu] [inputSize=64] [batch=2] [steps=2]
// Needs `npm run build`. docs/engine.md quotes its cpu-backend figure.
'use strict';
const lib = require('../dist/lib');
const tf = require('../dist/lib/engine/tf');

(async () => {
  const [backend = 'cpu', size = '64', batch = '2', steps = '2'] = process.argv.slice(2);
  console.log((await lib.selectBackend(backend)).line);
  const model = await lib.createBoatModel({ classes: ['a', 'b'], mode: 'finetune', inputSize: +size });
  const x = tf.randomNormal([+batch, +size, +size, 3], 0, 50, 'float32', 1);
  const y = tf.tensor1d(
    Array.from({ length: +batch }, (_, i) => i % 2),
    'int32',
  );
  const optimizer = tf.train.momentum(0.001, 0.9);
  for (let i = 0; i < +steps; i++) {
    const t = Date.now();
    const loss = optimizer.minimize(() => lib.nllLoss(model.forward(x, true), y), true, model.trainableVariables());
    console.log(
      `step ${i + 1}: ${((Date.now() - t) / 1000).toFixed(1)} s, loss ${loss.dataSync()[0].toFixed(4)}, tensors ${tf.memory().numTensors}`,
    );
    loss.dispose();
  }
})().catch((err) => {
  console.error(`error: ${err.message.split('\n')[0]}`);
  process.exit(1);
});
