// The bf16 ResNet50 fine-tune step at batch 8 under engine settings taking turns, one timed step of each
// per round (after an untimed one) after two warm-ups of each, so that all see the same load: the
// convolution gradients on NHWC or on oneDNN's blocked layouts, and BatchNorm + ReLU in one kernel or two.
// Prints, per setting, the median img/s of the timed steps and the mean milliseconds per step of each
// kernel category (every kernel timed exclusively, as `boat bench --profile` does), then every round, as
// JSON. Whole steps on 2 shared cores swing by ±15%; the kernel times say where a setting's time went.
// Needs the native addon and a CPU with native bf16. Usage: node bench/train-step-ab.js [rounds=10] [size=224]
const path = require('path');
const lib = require(path.join(__dirname, '..', 'dist', 'lib'));
const tf = require(path.join(__dirname, '..', 'dist', 'lib', 'engine', 'tf'));
const { fineTuneStepper } = require(path.join(__dirname, '..', 'dist', 'lib', 'bench', 'model'));
const { kernelCategory, timeKernels } = require(path.join(__dirname, '..', 'dist', 'lib', 'bench', 'profile'));
const rounds = Number(process.argv[2] ?? 10);
const size = Number(process.argv[3] ?? 224);
const settings = {
  'NHWC gradients, fused BatchNorm + ReLU': ['nhwc', true],
  'NHWC gradients, BatchNorm and ReLU apart': ['nhwc', false],
  'blocked gradients, fused BatchNorm + ReLU': ['blocked', true],
  'blocked gradients, BatchNorm and ReLU apart': ['blocked', false],
};
(async () => {
  console.log((await lib.selectBackend(undefined, 'bf16')).line);
  if (lib.nativeGradientLayout() === null || !lib.batchNormReluFused()) throw new Error('needs the native addon');
  const model = await lib.createBoatModel({ classes: ['a', 'b', 'c', 'd', 'e'], mode: 'finetune', inputSize: size });
  const stepper = fineTuneStepper(model, 8, size);
  const names = Object.keys(settings);
  const result = Object.fromEntries(names.map((n) => [n, { imgS: [], kernelMs: {} }]));
  for (let r = -2; r < rounds; r++) {
    for (const name of names) {
      const [layout, fused] = settings[name];
      lib.nativeGradientLayout(layout);
      lib.setBatchNormReluFusion(fused);
      stepper.step(); // untimed, so that each timed step follows one of its own setting
      const timing = r >= 0 && r % 2 === 1 ? timeKernels(tf.getBackend()) : null; // kernels timed in odd rounds
      const t = process.hrtime.bigint();
      stepper.step();
      const imgS = 8e9 / Number(process.hrtime.bigint() - t);
      timing?.restore();
      if (r < 0) continue;
      if (!timing) result[name].imgS.push(+imgS.toFixed(3));
      for (const [kernel, s] of timing?.stats ?? []) {
        const c = kernelCategory(kernel);
        result[name].kernelMs[c] = (result[name].kernelMs[c] ?? 0) + s.ms / Math.floor(rounds / 2);
      }
    }
  }
  lib.nativeGradientLayout('nhwc');
  lib.setBatchNormReluFusion(true);
  const median = (v) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];
  const summary = Object.fromEntries(
    names.map((n) => [
      n,
      {
        medianImgS: median(result[n].imgS),
        kernelMs: Object.fromEntries(Object.entries(result[n].kernelMs).map(([c, ms]) => [c, +ms.toFixed(1)])),
      },
    ]),
  );
  console.log(
    JSON.stringify({ size, rounds, summary, imgS: Object.fromEntries(names.map((n) => [n, result[n].imgS])) }, null, 1),
  );
})().catch((err) => {
  console.error(`error: ${err.message.split('\n')[0]}`);
  process.exit(1);
});
