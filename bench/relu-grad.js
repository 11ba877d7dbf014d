// ReLU's gradient in a ResNet50 fine-tune step at batch 8 and 224 px: the native kernel (BoatReluGrad,
// lib/engine/relu-gradient.ts) against tfjs' mul(dy, cast(step(x))), which the native kernels replace.
// The ReLU input shapes are recorded from one real train step; then, for each distinct shape, both are
// run on random tensors: 2 warm-ups each, then `rounds` rounds that take turns, so that both see the
// same load. Prints median ms per call and per step (the ReLUs of one shape together), checks that both
// give the same values, and prints the same as JSON. Needs the native addon (with reluGrad).
// Usage: node bench/relu-grad.js [rounds=7]
const path = require('path');
const tf = require(path.join(__dirname, '..', 'dist', 'lib', 'engine', 'tf'));
const lib = require(path.join(__dirname, '..', 'dist', 'lib'));
const { RELU_GRAD } = require(path.join(__dirname, '..', 'dist', 'lib', 'engine', 'relu-gradient'));
const { fineTuneStepper, median } = require(path.join(__dirname, '..', 'dist', 'lib', 'bench', 'model'));
const rounds = Number(process.argv[2] ?? 7);

/** Runs one train step with the Relu kernel wrapped; returns each input shape and how many ReLUs have it. */
function recordShapes(step) {
  const seen = new Map();
  const original = tf.getKernel('Relu', 'wasm');
  tf.unregisterKernel('Relu', 'wasm');
  tf.registerKernel({
    ...original,
    kernelFunc: (args) => {
      const shape = args.inputs.x.shape;
      const key = shape.join('×');
      seen.set(key, { shape, layers: (seen.get(key)?.layers ?? 0) + 1 });
      return original.kernelFunc(args);
    },
  });
  try {
    step();
  } finally {
    tf.unregisterKernel('Relu', 'wasm');
    tf.registerKernel(original);
  }
  return [...seen.values()];
}

(async () => {
  console.log((await lib.selectBackend(undefined, 'fp32')).line);
  if (!tf.getKernel(RELU_GRAD, 'wasm'))
    throw new Error(`${RELU_GRAD} is not registered: build the addon (npm run build:native)`);
  const model = await lib.createBoatModel({ classes: ['a', 'b', 'c', 'd', 'e'], mode: 'finetune' });
  const stepper = fineTuneStepper(model);
  const cases = recordShapes(() => stepper.step());
  stepper.dispose();
  model.dispose();

  const variants = {
    native: (dy, x) => tf.engine().runKernel(RELU_GRAD, { dy, x }, {}),
    tfjs: (dy, x) => tf.tidy(() => tf.mul(dy, tf.cast(tf.step(x), 'float32'))),
  };
  const rows = [];
  for (const c of cases) {
    const x = tf.randomNormal(c.shape, 0, 1, 'float32', 1);
    const dy = tf.randomNormal(c.shape, 0, 1, 'float32', 2);
    const time = (name) => {
      const t = process.hrtime.bigint();
      const out = variants[name](dy, x); // wasm computes synchronously: done when it returns
      const ms = Number(process.hrtime.bigint() - t) / 1e6;
      out.dispose();
      return ms;
    };
    const [a, b] = [variants.native(dy, x), variants.tfjs(dy, x)];
    const same = tf.util.arraysEqual(a.dataSync(), b.dataSync());
    tf.dispose([a, b]);
    if (!same) throw new Error(`${c.shape}: the native gradient differs from tfjs'`);
    for (let i = 0; i < 2; i++) for (const v of ['native', 'tfjs']) time(v);
    const ms = { native: [], tfjs: [] };
    for (let r = 0; r < rounds; r++)
      for (const v of r % 2 ? ['tfjs', 'native'] : ['native', 'tfjs']) ms[v].push(time(v));
    tf.dispose([x, dy]);
    rows.push({
      shape: c.shape.join('×'),
      layers: c.layers,
      native: median(ms.native),
      tfjs: median(ms.tfjs),
      samples: ms,
    });
  }

  const fmt = (v) => v.toFixed(v < 10 ? 2 : 1);
  console.log(`\nReLU gradient: median ms per call over ${rounds} rounds (× layers = per step)`);
  console.log('input shape              layers  native ms  tfjs ms  native/tfjs');
  let [sumNative, sumTfjs] = [0, 0];
  for (const r of rows) {
    console.log(
      `${r.shape.padEnd(24)} ${String(r.layers).padStart(6)} ${fmt(r.native).padStart(10)} ${fmt(r.tfjs).padStart(8)}` +
        ` ${(r.native / r.tfjs).toFixed(2).padStart(12)}`,
    );
    sumNative += r.layers * r.native;
    sumTfjs += r.layers * r.tfjs;
  }
  console.log(`per step: native ${sumNative.toFixed(0)} ms, tfjs ${sumTfjs.toFixed(0)} ms`);
  console.log(JSON.stringify({ rounds, rows, perStep: { native: sumNative, tfjs: sumTfjs } }));
})().catch((err) => {
  console.error(err);
  process.exit(1);
});
