// ResNet50 at batch 8, fp32 against bf16 precision, taking turns: a forward pass and a fine-tune step
// (SGD momentum) in each precision per round, after one warm-up of each, so that both see the same load.
// Prints the img/s of every round as JSON. Needs the native addon and a CPU with native bf16.
// Usage: node bench/precision-ab.js [rounds=3]
const path = require('path');
const tf = require(path.join(__dirname, '..', 'dist', 'lib', 'engine', 'tf'));
const lib = require(path.join(__dirname, '..', 'dist', 'lib'));
const { fineTuneStepper } = require(path.join(__dirname, '..', 'dist', 'lib', 'bench', 'model'));
const rounds = Number(process.argv[2] ?? 3);
(async () => {
  console.log((await lib.selectBackend(undefined, 'bf16')).line);
  const model = await lib.createBoatModel({ classes: ['a', 'b', 'c', 'd', 'e'], mode: 'finetune' });
  const x = tf.randomNormal([8, 224, 224, 3], 0, 50);
  const stepper = fineTuneStepper(model);
  const step = () => stepper.step();
  const forward = () => {
    const out = model.forward(x);
    out.dataSync();
    out.dispose();
  };
  const imgS = (f) => {
    const t = process.hrtime.bigint();
    f();
    return 8e9 / Number(process.hrtime.bigint() - t);
  };
  const result = { fp32: { forward: [], train: [] }, bf16: { forward: [], train: [] } };
  for (const p of ['fp32', 'bf16']) {
    await lib.selectBackend(undefined, p);
    forward();
    step();
  }
  for (let r = 0; r < rounds; r++) {
    for (const p of ['fp32', 'bf16']) {
      await lib.selectBackend(undefined, p);
      result[p].forward.push(+imgS(forward).toFixed(2));
      result[p].train.push(+imgS(step).toFixed(2));
    }
  }
  console.log(JSON.stringify(result));
})();
