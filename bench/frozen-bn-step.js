// A ResNet50 fine-tune step (batch 8, SGD momentum) with BatchNorm frozen and in training mode, in img/s.
// Usage: node bench/frozen-bn-step.js [REPO]  (REPO: a built checkout, default this one; compare two
// checkouts by running it on each, alternating, while nothing else changes on the machine).
const path = require('path');
const repo = path.resolve(process.argv[2] ?? path.join(__dirname, '..'));
const tf = require(path.join(repo, 'dist', 'lib', 'engine', 'tf'));
const lib = require(path.join(repo, 'dist', 'lib'));
(async () => {
  const b = await lib.selectBackend();
  console.log(b.line);
  const model = await lib.createBoatModel({ classes: ['a', 'b', 'c', 'd', 'e'], mode: 'finetune' });
  const x = tf.randomUniform([8, 224, 224, 3], -100, 100);
  const y = tf.tensor1d([0, 1, 2, 3, 4, 0, 1, 2], 'int32');
  const opt = tf.train.momentum(1e-3, 0.9);
  const step = () => {
    const l = opt.minimize(() => lib.nllLoss(model.forward(x, true), y), true, model.trainableVariables());
    l.dataSync();
    l.dispose();
  };
  for (const frozen of [true, false]) {
    model.batchNormFrozen = frozen;
    step();
    const t = Date.now();
    const n = 2;
    for (let i = 0; i < n; i++) step();
    console.log(`frozen=${frozen}: ${((8 * n) / ((Date.now() - t) / 1000)).toFixed(2)} img/s`);
  }
})();
