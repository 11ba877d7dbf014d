// Weight-space interpolation between the two stages of finished `--recipe two-stage` runs (WiSE-FT:
// Wortsman et al., CVPR 2022, "Robust fine-tuning of zero-shot models"): for each alpha, every weight is
// (1 - alpha) * stage 1's (the best head on the pretrained backbone) + alpha * stage 2's (its best epoch),
// read from the run's two checkpoints, and the network is scored on val and test. With BatchNorm frozen in
// stage 2 both ends share BatchNorm's moving statistics, so the mix is one network of the same size. The
// ends themselves (alpha 0 and 1) come from the run's metrics.json; given as ALPHAS they are scored too,
// and reproduce those figures (a check that the checkpoints were read right). Prints a line per seed, then,
// over the seeds, the val and test of what the recipe kept against the alpha val would choose (ties to the
// larger alpha).
// Usage: node bench/interpolate-stages.js RUN DATA SEEDS [ALPHAS=0.25,0.5,0.75]
//   RUN: a `boat repeat` --out (RUN/seed-S, RUN/seed-S.checkpoint, RUN/seed-S.stage1.checkpoint)
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const [run, data, seedList, alphaList = '0.25,0.5,0.75', child] = process.argv.slice(2);
if (!run || !data || !seedList) {
  console.error('usage: node bench/interpolate-stages.js RUN DATA SEEDS [ALPHAS]');
  process.exit(2);
}
const alphas = alphaList.split(',').map(Number);

/** One seed, in its own process: TF.js numbers layer names anew for a second model, and the checkpoints store names. */
async function oneSeed(seed) {
  const tf = require(path.join(__dirname, '..', 'dist', 'lib', 'engine', 'tf'));
  const lib = require(path.join(__dirname, '..', 'dist', 'lib'));
  const { readTensors } = require(path.join(__dirname, '..', 'dist', 'lib', 'train', 'tensors-file'));
  await lib.selectBackend();
  const dir = path.join(run, `seed-${seed}`);
  const meta = lib.readModelMetadata(dir);
  const { stages } = JSON.parse(fs.readFileSync(path.join(dir, 'metrics.json'), 'utf8'));
  const model = await lib.createBoatModel({
    classes: meta.classes,
    mode: 'feature-extractor',
    inputSize: meta.inputSize,
  });
  const best = (checkpoint) => {
    const state = JSON.parse(fs.readFileSync(path.join(checkpoint, 'state.json'), 'utf8'));
    return new Map(readTensors(checkpoint, 'best', state.files).map((t) => [t.name, t.tensor]));
  };
  const head = best(`${dir}.stage1.checkpoint`);
  const whole = best(`${dir}.checkpoint`);
  const weights = model.allWeights();
  if (whole.size !== weights.length || weights.some((w) => !whole.has(w.name)))
    throw new Error(`${dir}.checkpoint does not hold this network's weights`);
  const ends = [weights.map((w) => head.get(w.name) ?? w.read().clone()), weights.map((w) => whole.get(w.name))];
  model.mode = 'finetune';
  model.batchNormFrozen = true;
  model.backboneChanged = true;
  const points = [];
  for (const alpha of alphas) {
    weights.forEach((w, i) => {
      const mixed = tf.tidy(() => ends[0][i].mul(1 - alpha).add(ends[1][i].mul(alpha)));
      w.write(mixed);
      mixed.dispose();
    });
    const score = async (split) => (await lib.evaluateModel(model, path.join(data, split))).accuracy;
    points.push({ alpha, val: await score('val'), test: await score('test') });
  }
  const stage = (s) => ({ val: s.val_acc, test: s.test_acc });
  console.log(JSON.stringify({ seed, stage1: stage(stages.stage1), stage2: stage(stages.stage2), points }));
}

if (child === '--child') {
  oneSeed(Number(seedList)).catch((err) => {
    console.error(err.message);
    process.exit(1);
  });
} else {
  const rows = [];
  for (const seed of seedList.split(',').map(Number)) {
    const r = spawnSync(process.execPath, [process.argv[1], run, data, String(seed), alphaList, '--child'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    if (r.status !== 0) process.exit(1);
    const row = JSON.parse(r.stdout.trim().split('\n').at(-1));
    const all = [{ alpha: 0, ...row.stage1 }, ...row.points, { alpha: 1, ...row.stage2 }];
    row.kept = row.stage2.val >= row.stage1.val ? all.at(-1) : all[0];
    row.chosen = all.reduce((b, p) => (p.val > b.val || (p.val === b.val && p.alpha > b.alpha) ? p : b));
    rows.push(row);
    const f = (p) => `${p.val.toFixed(4)} / ${p.test.toFixed(4)}`;
    console.log(
      `seed ${seed}: ${all.map((p) => `alpha ${p.alpha}: ${f(p)}`).join(', ')}; kept ${f(row.kept)}, val chooses alpha ${row.chosen.alpha}`,
    );
  }
  const spread = (xs) =>
    `${(xs.reduce((a, b) => a + b, 0) / xs.length).toFixed(4)} (${Math.min(...xs).toFixed(4)}–${Math.max(...xs).toFixed(4)})`;
  for (const [label, key] of [
    ['what the recipe kept', 'kept'],
    ['the alpha val chooses', 'chosen'],
  ])
    console.log(
      `${label}: val ${spread(rows.map((r) => r[key].val))}, test ${spread(rows.map((r) => r[key].test))} over ${rows.length} seeds`,
    );
}
