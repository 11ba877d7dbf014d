// ResNet50 inference at batch 8 (224 px): BatchNorm folded into the convolutions, against the unfolded
// Layers model, and (with the native kernels) against the folded network with its residual adds left
// unfused (the BoatConv2DAdd kernel unregistered). The variants take turns, one forward pass each per
// round after one warm-up each, so that all see the same load. Prints the img/s of every round, and the
// process's CPU time per image (every thread's: wasm's, OpenMP's), which a contended machine disturbs
// less than the wall clock, with medians, as JSON.
// Usage: node bench/folded-forward.js [rounds=5] [precision=fp32]
const path = require('path');
const tf = require(path.join(__dirname, '..', 'dist', 'lib', 'engine', 'tf'));
const lib = require(path.join(__dirname, '..', 'dist', 'lib'));
const { CONV2D_ADD } = require(path.join(__dirname, '..', 'dist', 'lib', 'engine', 'native-kernels'));
const rounds = Number(process.argv[2] ?? 5);
const precision = process.argv[3] ?? 'fp32';
(async () => {
  console.log((await lib.selectBackend(undefined, precision)).line);
  const model = await lib.createBoatModel({ classes: ['a', 'b', 'c', 'd', 'e'], mode: 'feature-extractor' });
  const x = tf.randomNormal([8, 224, 224, 3], 0, 50, 'float32', 1);
  const convAdd = tf.getKernel(CONV2D_ADD, 'wasm');
  const fuseAdd = (on) => {
    if (on && !tf.getKernel(CONV2D_ADD, 'wasm')) tf.registerKernel(convAdd);
    if (!on && tf.getKernel(CONV2D_ADD, 'wasm')) tf.unregisterKernel(CONV2D_ADD, 'wasm');
  };
  const variants = { folded: [true, true], unfolded: [false, true] };
  if (convAdd) variants.folded_add_unfused = [true, false];
  const forward = ([fold, fused]) => {
    model.foldBatchNorm = fold;
    if (convAdd) fuseAdd(fused);
    const cpu = process.cpuUsage();
    const t = process.hrtime.bigint();
    const out = model.forward(x);
    out.dataSync();
    out.dispose();
    const wall = Number(process.hrtime.bigint() - t);
    const used = process.cpuUsage(cpu);
    return { imgS: 8e9 / wall, cpuMs: (used.user + used.system) / 1000 / 8 };
  };
  const result = {};
  for (const [name, v] of Object.entries(variants)) {
    forward(v);
    result[name] = { img_s: [], cpu_ms_per_img: [] };
  }
  for (let r = 0; r < rounds; r++) {
    for (const [name, v] of Object.entries(variants)) {
      const { imgS, cpuMs } = forward(v);
      result[name].img_s.push(+imgS.toFixed(2));
      result[name].cpu_ms_per_img.push(+cpuMs.toFixed(1));
    }
  }
  if (convAdd) fuseAdd(true);
  const median = (v) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];
  for (const r of Object.values(result))
    r.median = { img_s: median(r.img_s), cpu_ms_per_img: median(r.cpu_ms_per_img) };
  console.log(JSON.stringify(result));
  x.dispose();
  model.dispose();
})();
