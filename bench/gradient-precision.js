// The native filter gradient (Conv2DBackpropFilter) and input gradient (Conv2DBackpropInput) of every
// distinct convolution geometry of a ResNet50 fine-tune step at batch 8 and 224 px, in fp32 and in bf16.
// The geometries are recorded from one real train step (so they are exactly what training runs); then
// each gradient is called straight on the addon with random inputs: 2 warm-up calls in each precision,
// then `rounds` rounds that alternate fp32 and bf16, so that both see the same load. Prints a table of
// medians (ms per call and per step, the layers of one geometry together) and the same as JSON.
// Needs the native addon and a CPU with native bf16.
// Usage: node bench/gradient-precision.js [rounds=5]
const path = require('path');
const tf = require(path.join(__dirname, '..', 'dist', 'lib', 'engine', 'tf'));
const lib = require(path.join(__dirname, '..', 'dist', 'lib'));
const { convInfo, geometryOf } = require(path.join(__dirname, '..', 'dist', 'lib', 'engine', 'native-kernels'));
const { fineTuneStepper, median } = require(path.join(__dirname, '..', 'dist', 'lib', 'bench', 'model'));
const rounds = Number(process.argv[2] ?? 5);

const DIRECTIONS = { Conv2DBackpropFilter: 'filter', Conv2DBackpropInput: 'input' };

/** The addon's 17-number geometry of a kernel call, as the native kernels build it. */
const geometry = (xShape, filterShape, attrs) => Array.from(geometryOf(convInfo(xShape, filterShape, attrs)));

/** Runs one train step with both gradient kernels wrapped; returns each direction's geometries and their layer counts. */
function recordGeometries(step) {
  const seen = new Map();
  const originals = Object.keys(DIRECTIONS).map((name) => tf.getKernel(name, 'wasm'));
  for (const original of originals) {
    tf.unregisterKernel(original.kernelName, 'wasm');
    tf.registerKernel({
      ...original,
      kernelFunc: (args) => {
        const { inputs, attrs } = args;
        const filter = original.kernelName === 'Conv2DBackpropFilter';
        const g = filter
          ? geometry(inputs.x.shape, attrs.filterShape, attrs)
          : geometry(attrs.inputShape, inputs.filter.shape, attrs);
        const key = `${DIRECTIONS[original.kernelName]} ${g.join(',')}`;
        const entry = seen.get(key) ?? { direction: DIRECTIONS[original.kernelName], geometry: g, layers: 0 };
        entry.layers++;
        seen.set(key, entry);
        return original.kernelFunc(args);
      },
    });
  }
  try {
    step();
  } finally {
    for (const original of originals) {
      tf.unregisterKernel(original.kernelName, 'wasm');
      tf.registerKernel(original);
    }
  }
  return [...seen.values()];
}

const random = (n) => Float32Array.from({ length: n }, () => Math.random() - 0.5);

function describe(g) {
  const [, h, w, ci, kh, kw, co, oh, ow, sh] = g;
  return `${kh}×${kw}/${sh} ${ci}→${co}, ${h}×${w}→${oh}×${ow}`;
}

(async () => {
  console.log((await lib.selectBackend(undefined, 'bf16')).line);
  const loaded = lib.loadNativeAddon();
  if (!('native' in loaded)) throw new Error(`no native addon: ${loaded.reason}`);
  const addon = loaded.native; // the instance the backend configured (threads), from require's cache

  const model = await lib.createBoatModel({ classes: ['a', 'b', 'c', 'd', 'e'], mode: 'finetune' });
  const stepper = fineTuneStepper(model);
  const step = () => stepper.step();
  const cases = recordGeometries(step);
  stepper.dispose();

  const rows = [];
  for (const c of cases) {
    const g = Int32Array.from(c.geometry);
    const [n, h, w, ci, kh, kw, co, oh, ow] = c.geometry;
    const src = random(n * h * w * ci);
    const dst = random(n * oh * ow * co);
    const weights = random(kh * kw * ci * co);
    const call =
      c.direction === 'filter'
        ? () => addon.conv2dBackpropFilter(g, src, dst, weights)
        : () => addon.conv2dBackpropInput(g, dst, weights, src);
    const time = (precision) => {
      addon.setPrecision(precision);
      const t = process.hrtime.bigint();
      call();
      return Number(process.hrtime.bigint() - t) / 1e6;
    };
    for (let i = 0; i < 2; i++) for (const p of ['fp32', 'bf16']) time(p);
    const ms = { fp32: [], bf16: [] };
    for (let r = 0; r < rounds; r++) for (const p of r % 2 ? ['bf16', 'fp32'] : ['fp32', 'bf16']) ms[p].push(time(p));
    const fp32 = median(ms.fp32);
    const bf16 = median(ms.bf16);
    rows.push({ ...c, shape: describe(c.geometry), fp32, bf16, ratio: bf16 / fp32, samples: ms });
  }
  await lib.selectBackend(undefined, 'fp32');

  const fmt = (v) => v.toFixed(v < 10 ? 2 : 1);
  for (const direction of ['filter', 'input']) {
    console.log(`\n${direction} gradient: median ms per call over ${rounds} rounds (× layers = per step)`);
    console.log('geometry (k×k/stride ci→co, in→out)        layers   fp32 ms   bf16 ms  bf16/fp32');
    let [sumFp32, sumBf16] = [0, 0];
    for (const r of rows.filter((r) => r.direction === direction)) {
      console.log(
        `${r.shape.padEnd(42)} ${String(r.layers).padStart(6)} ${fmt(r.fp32).padStart(9)} ${fmt(r.bf16).padStart(9)}` +
          ` ${r.ratio.toFixed(2).padStart(10)}`,
      );
      sumFp32 += r.layers * r.fp32;
      sumBf16 += r.layers * r.bf16;
    }
    console.log(`per step: all fp32 ${sumFp32.toFixed(0)} ms, all bf16 ${sumBf16.toFixed(0)} ms`);
  }
  console.log(JSON.stringify({ rounds, rows }));
})();
