#!/usr/bin/env node
// ResNet50 forward and fine-tune step img/s on the backend selectBackend picks (BOAT_BACKEND to force).
//   node bench/measure-speed.js [batch=8] [reps=3]
// Needs `npm run build`. Used by scripts/gpu-check.sh; `npm run bench` is the full comparison.
'use strict';
const lib = require('../dist/lib');
const tf = require('../dist/lib/engine/tf');

(async () => {
  const [batch = '8', reps = '3'] = process.argv.slice(2);
  const b = Number(batch);
  const n = Number(reps);
  console.log((await lib.selectBackend()).line);
  const model = await lib.createBoatModel({ classes: ['a', 'b', 'c', 'd', 'e'], mode: 'finetune' });
  const x = tf.randomNormal([b, 224, 224, 3], 0, 50, 'float32', 1);
  const y = tf.tensor1d(
    Array.from({ length: b }, (_, i) => i % 5),
    'int32',
  );
  const time = async (f) => {
    await f(); // warm-up: shaders or kernels compiled
    const t = Date.now();
    for (let i = 0; i < n; i++) await f();
    return (b * n * 1000) / (Date.now() - t);
  };
  const forward = await time(async () => {
    const out = model.forward(x);
    await out.data();
    out.dispose();
  });
  console.log(`forward, batch ${b}: ${forward.toFixed(2)} img/s`);
  const optimizer = tf.train.momentum(0.001, 0.9);
  const train = await time(async () => {
    const loss = optimizer.minimize(() => lib.nllLoss(model.forward(x, true), y), true, model.trainableVariables());
    await loss.data();
    loss.dispose();
  });
  console.log(`train step, batch ${b}: ${train.toFixed(2)} img/s; tensors ${tf.memory().numTensors}`);
})().catch((err) => {
  console.error(`error: ${err.message.split('\n')[0]}`);
  process.exit(1);
});
