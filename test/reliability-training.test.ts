/**
 * Training reliability on the demo set at 32 px (quick): a fine-tuned backbone kept through --init,
 * --resume refused when a setting differs, exact resume of a killed fine-tune (CLI and notebook 03's
 * library calls), the <out>.lock of concurrent runs, old or incomplete model folders, a full disk while
 * saving, and memory (tensors, wasm heap, RSS) over 3 epochs.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { before, test } from 'node:test';
import * as tf from '../lib/engine/tf';

import { DataLoader, evalTransforms, ImageFolder } from '../lib/images';
import { BoatModel, createBoatModel, loadBoatModel, readModelMetadata } from '../lib/model';
import { nativeBf16Support, nativeKernelsInUse, selectBackend, wasmHeapMb } from '../lib/engine';
import { ExperimentOptions, runExperiment } from '../lib/train';
import { parseCsv, recoverInterruptedSave } from '../lib/util';
import { hashTree, REPO_ROOT, runCli, tempDir } from './helpers';

const work = tempDir();
const data = path.join(work, 'data');
const cache = path.join(work, 'cache');
const models = path.join(work, 'models');
const BOAT = path.join(REPO_ROOT, 'bin', 'boat.js');
const SIZE = 32;
const silent = { batch: (): void => {}, phase: (): void => {} };

before(async () => {
  assert.equal(
    runCli(['data', 'demo', '--out', path.join(data, 'boats'), '--per-class', '3', '--seed', '1']).status,
    0,
  );
  assert.equal(runCli(['data', 'split', '--data', path.join(data, 'boats'), '--out', data]).status, 0);
  fs.mkdirSync(models);
  await selectBackend();
});

/** In-process runs: quiet, at 32 px, the log kept for assertions. */
async function experiment(
  options: Partial<ExperimentOptions> & Pick<ExperimentOptions, 'mode' | 'out'>,
): Promise<{ model: BoatModel; log: string[]; stopped: boolean }> {
  const log: string[] = [];
  const result = await runExperiment({
    data,
    epochs: 1,
    batchSize: 4,
    seed: 1,
    inputSize: SIZE,
    cacheDir: cache,
    progress: silent,
    log: (l) => log.push(l),
    ...options,
  });
  return { model: result.model, log, stopped: result.stopped };
}

/** Backbone features of the val images (eval transform), as the feature extractor computes them. */
async function featuresOf(model: BoatModel): Promise<Float32Array> {
  const loader = new DataLoader(
    new ImageFolder(path.join(data, 'val'), evalTransforms(model.info.preprocessing, model.info.inputSize)),
    { batchSize: 8 },
  );
  const rows: number[] = [];
  for await (const batch of loader.batches(0)) {
    const f = model.features(batch.x);
    rows.push(...(await f.data()));
    tf.dispose([f, batch.x, batch.y]);
  }
  return Float32Array.from(rows);
}

const bytesOf = (a: Float32Array): Buffer => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
const oneLine = (stderr: string): void => assert.equal(stderr.trim().split('\n').length, 1, stderr);

test('a fine-tuned backbone survives --init in both modes: the same features after reload, and its own cache entries', async () => {
  const ft = path.join(models, 'ft');
  (await experiment({ mode: 'finetune', out: ft, lr: 0.01 })).model.dispose();
  const tuned = await loadBoatModel(ft);
  const tunedFeatures = await featuresOf(tuned);
  tuned.dispose();
  const imagenet = await createBoatModel({ classes: ['a', 'b'], mode: 'feature-extractor', inputSize: SIZE });
  const imagenetFeatures = await featuresOf(imagenet);
  imagenet.dispose();
  assert.notDeepEqual(
    bytesOf(tunedFeatures),
    bytesOf(imagenetFeatures),
    'the fine-tune moved the backbone (else this test proves nothing)',
  );

  // The cache already holds ImageNet features of these very images: they must not be served for the fine-tuned backbone.
  (await experiment({ mode: 'feature-extractor', out: path.join(models, 'fe-imagenet') })).model.dispose();
  const fe = path.join(models, 'fe-from-ft');
  const run = await experiment({ mode: 'feature-extractor', out: fe, init: ft });
  run.model.dispose();
  assert.ok(
    run.log.some((l) => /^features val: 5 images, 5 computed/.test(l)),
    run.log.join('\n'),
  );
  assert.equal(readModelMetadata(fe).backbone, 'saved');
  const reloaded = await loadBoatModel(fe);
  assert.ok(
    bytesOf(await featuresOf(reloaded)).equals(bytesOf(tunedFeatures)),
    'feature extractor: the fine-tuned backbone came back from the save',
  );
  reloaded.dispose();
  // A second run from the same backbone finds its features in the cache, keyed by that backbone's weights.
  const again = await experiment({ mode: 'feature-extractor', out: path.join(models, 'fe-from-ft-2'), init: ft });
  again.model.dispose();
  assert.ok(
    again.log.some((l) => /^features val: 5 images, 0 computed/.test(l)),
    again.log.join('\n'),
  );

  const ft2 = path.join(models, 'ft-from-ft');
  const second = await experiment({ mode: 'finetune', out: ft2, init: ft, lr: 0.01 });
  const trainedFeatures = await featuresOf(second.model);
  second.model.dispose();
  assert.notDeepEqual(
    bytesOf(trainedFeatures),
    bytesOf(tunedFeatures),
    'the second fine-tune trained the backbone further',
  );
  const reloaded2 = await loadBoatModel(ft2);
  assert.ok(
    bytesOf(await featuresOf(reloaded2)).equals(bytesOf(trainedFeatures)),
    'fine-tune: the reloaded backbone is the trained one',
  );
  reloaded2.dispose();
});

test('--resume refuses, in one line naming it, every setting that differs; --epochs may grow', async () => {
  const out = path.join(models, 'resume');
  const base = { mode: 'feature-extractor' as const, out, lr: 0.01 };
  (await experiment(base)).model.dispose();
  const otherData = path.join(work, 'data-other');
  fs.cpSync(data, otherData, { recursive: true });
  const kayak = path.join(otherData, 'train', 'kayak');
  fs.copyFileSync(path.join(kayak, fs.readdirSync(kayak)[0]), path.join(kayak, 'one-more.jpg'));
  const refusals: Array<[Partial<ExperimentOptions>, RegExp]> = [
    [{ lr: 0.02 }, /lr 0\.02 \(checkpoint: 0\.01\)/],
    [{ seed: 2 }, /seed 2 \(checkpoint: 1\)/],
    [{ batchSize: 2 }, /batch-size 2 \(checkpoint: 4\)/],
    [{ accumulate: 2 }, /accumulate 2 \(checkpoint: 1\)/],
    [{ mode: 'finetune' }, /mode finetune \(checkpoint: feature-extractor\)/],
    [{ data: otherData }, /data [0-9a-f]{16} \(checkpoint: [0-9a-f]{16}\)/],
    [{ inputSize: 48 }, /input-size 48 \(checkpoint: 32\)/],
    [{ init: path.join(models, 'fe-imagenet') }, /init model [0-9a-f]{16} \(checkpoint: none\)/],
    [{ balanceClasses: true }, /class-weights \[[\d.,]+\] \(checkpoint: none\)/],
    [{ optimizer: 'adam' }, /optimizer adam \(checkpoint: sgd\)/],
    [{ views: 1 }, /views 1 \(checkpoint: 0\)/],
  ];
  for (const [change, message] of refusals) {
    await assert.rejects(
      experiment({ ...base, ...change, resume: true }),
      (err: Error) => {
        assert.equal(err.name, 'UserError', err.stack);
        assert.match(err.message, /^cannot resume from .*resume\.checkpoint: /);
        assert.match(err.message, message);
        assert.doesNotMatch(err.message, /\n/);
        return true;
      },
      JSON.stringify(change),
    );
  }
  const train = ['train', '--mode', 'feature-extractor', '--data', data, '--out', out, '--input-size', '32'];
  const same = [...train, '--batch-size', '4', '--seed', '1', '--cache', cache, '--resume'];
  const cli = runCli([...same, '--lr', '0.02']);
  assert.equal(cli.status, 2, cli.stdout);
  assert.match(
    cli.stderr,
    /^boat: error: cannot resume from .*: lr 0\.02 \(checkpoint: 0\.01\); resume with the checkpoint's settings, or start again without --resume\n$/,
  );
  // An fp32 checkpoint resumed in bf16 (what the default, auto, picks on a CPU with native bf16): the flag to add.
  if (nativeKernelsInUse() !== null && nativeBf16Support().ok) {
    const bf16 = runCli([...same, '--lr', '0.01', '--precision', 'bf16']);
    assert.equal(bf16.status, 2, bf16.stdout);
    assert.match(
      bf16.stderr,
      /^boat: error: cannot resume from .*: precision bf16 \(checkpoint: fp32\); resume with the checkpoint's settings \(--precision fp32, or BOAT_PRECISION=fp32 for the notebooks\), or start again without --resume\n$/,
    );
  }
  assert.ok(
    !fs.existsSync(path.join(out, 'history.csv')) ||
      parseCsv(fs.readFileSync(path.join(out, 'history.csv'), 'utf8')).length === 3,
    'the refused runs left the model as it was',
  );

  // Growing --epochs continues the run, to exactly what an uninterrupted 2-epoch run gives.
  const grown = await experiment({ ...base, epochs: 2, resume: true });
  grown.model.dispose();
  assert.ok(grown.log.some((l) => /^Resuming from/.test(l)));
  const straight = path.join(models, 'resume-straight');
  (await experiment({ ...base, out: straight, epochs: 2 })).model.dispose();
  assert.equal(parseCsv(fs.readFileSync(path.join(out, 'history.csv'), 'utf8')).length, 1 + 2 * 2);
  assert.ok(
    fs
      .readFileSync(path.join(out, 'head', 'weights.bin'))
      .equals(fs.readFileSync(path.join(straight, 'head', 'weights.bin'))),
  );
});

const FT = [
  'train',
  '--mode',
  'finetune',
  '--data',
  data,
  '--input-size',
  '32',
  '--epochs',
  '2',
  '--batch-size',
  '4',
  '--seed',
  '3',
  '--lr',
  '0.01',
];

/** metrics.json without what differs between two runs of the same training (times, and the files it skipped nothing of). */
function metricsWithoutTimes(dir: string): unknown {
  const { timing: _t, ...rest } = JSON.parse(fs.readFileSync(path.join(dir, 'metrics.json'), 'utf8')) as Record<
    string,
    unknown
  >;
  return rest;
}

const historyWithoutTimes = (dir: string): string[][] =>
  parseCsv(fs.readFileSync(path.join(dir, 'history.csv'), 'utf8')).map((r) => r.slice(0, 5));

function assertSameRun(a: string, b: string): void {
  for (const f of ['head/weights.bin', 'backbone/weights.bin'])
    assert.ok(fs.readFileSync(path.join(a, f)).equals(fs.readFileSync(path.join(b, f))), `${f} byte-identical`);
  // The last epoch's weights and optimizer state too, not only the best epoch's that the model keeps.
  for (const f of ['weights.bin', 'best.bin', 'optimizer.bin'])
    assert.ok(
      fs.readFileSync(path.join(`${a}.checkpoint`, f)).equals(fs.readFileSync(path.join(`${b}.checkpoint`, f))),
      `checkpoint ${f} byte-identical`,
    );
  assert.deepEqual(metricsWithoutTimes(a), metricsWithoutTimes(b));
  assert.deepEqual(historyWithoutTimes(a), historyWithoutTimes(b));
}

test('boat train --mode finetune, SIGKILL after epoch 1, --resume: byte-identical weights and metrics; the stale lock is taken over', () => {
  const straight = path.join(models, 'ft-cli-straight');
  const s = runCli([...FT, '--out', straight]);
  assert.equal(s.status, 0, s.stderr);
  const out = path.join(models, 'ft-cli-killed');
  const killed = spawnSync(process.execPath, [BOAT, ...FT, '--out', out], {
    encoding: 'utf8',
    env: { ...process.env, BOAT_TEST_KILL_AFTER_EPOCH: '1' },
  });
  assert.equal(killed.signal, 'SIGKILL', killed.stderr);
  assert.ok(!fs.existsSync(out) && fs.existsSync(`${out}.checkpoint/state.json`));
  assert.ok(fs.existsSync(`${out}.lock`), 'the killed run left its lock');
  const resumed = runCli([...FT, '--out', out, '--resume']);
  assert.equal(resumed.status, 0, resumed.stderr);
  assert.match(resumed.stdout, /note: took over .*ft-cli-killed\.lock, left by pid \d+, which is no longer running/);
  assert.doesNotMatch(resumed.stdout, /epoch 1\/2/);
  assert.match(resumed.stdout, /epoch 2\/2 train/);
  assertSameRun(out, straight);
  assert.ok(!fs.existsSync(`${out}.lock`), 'a finished run removes its lock');
  // --unfreeze and --freeze-bn are settings of a fine-tune's checkpoint too.
  for (const [flag, message] of [
    [['--unfreeze', '1'], /unfreeze 1 \(checkpoint: all\)/],
    [['--freeze-bn'], /freeze-bn true \(checkpoint: false\)/],
  ] as const) {
    const r = runCli([...FT, '--out', out, '--resume', ...flag]);
    assert.equal(r.status, 2, r.stdout);
    assert.match(r.stderr, message);
    oneLine(r.stderr);
  }
});

test("notebook 03's resume (runExperiment, stopped after epoch 1, resume: true) gives the uninterrupted run's weights", async () => {
  // The notebook's call, with its batch 128 / accumulate 16 scaled down to the demo set.
  const call = (
    out: string,
    more: Partial<ExperimentOptions>,
  ): Promise<{ model: BoatModel; log: string[]; stopped: boolean }> =>
    experiment({
      mode: 'finetune',
      out,
      epochs: 2,
      resume: false,
      unfreezeStages: undefined,
      seed: 38,
      batchSize: 4,
      accumulate: 2,
      ...more,
    });
  const straight = await call(path.join(models, 'nb03-straight'), {});
  const expected = await Promise.all(straight.model.allWeights().map((w) => w.read().data()));
  straight.model.dispose();
  const out = path.join(models, 'nb03');
  const tensorsBefore = tf.memory().numTensors;
  const first = await call(out, { shouldStop: () => true });
  assert.equal(first.stopped, true);
  first.model.dispose();
  const resumed = await call(out, { resume: true });
  assert.equal(resumed.stopped, false);
  const actual = await Promise.all(resumed.model.allWeights().map((w) => w.read().data()));
  resumed.model.dispose();
  assert.equal(tf.memory().numTensors, tensorsBefore, 'stopping and resuming in one process leaves no tensor behind');
  assert.equal(actual.length, expected.length);
  actual.forEach((a, i) =>
    assert.ok(Buffer.from(a.buffer).equals(Buffer.from(expected[i].buffer)), `weight ${i} byte-identical`),
  );
  assertSameRun(out, path.join(models, 'nb03-straight'));
});

test("two runs on one --out: the second is a one-line error naming the first's pid; live temp folders survive crash recovery", async () => {
  const out = path.join(models, 'busy');
  const args = [
    'train',
    '--mode',
    'feature-extractor',
    '--data',
    data,
    '--input-size',
    '32',
    '--batch-size',
    '4',
    '--cache',
    cache,
    '--out',
    out,
  ];
  const first = spawn(process.execPath, [BOAT, ...args, '--epochs', '100000']);
  try {
    let stdout = '';
    await new Promise<void>((resolve, reject) => {
      first.stdout.on('data', (d: Buffer) => {
        stdout += d.toString();
        if (/epoch 1\/100000 val/.test(stdout)) resolve();
      });
      first.on('exit', (code) => reject(new Error(`the first run ended (${code}) before training: ${stdout}`)));
    });
    assert.equal(JSON.parse(fs.readFileSync(`${out}.lock`, 'utf8')).pid, first.pid);
    for (const extra of [[], ['--resume']]) {
      const second = runCli([...args, '--epochs', '1', ...extra]);
      assert.equal(second.status, 2, second.stdout);
      assert.match(
        second.stderr,
        new RegExp(
          `^boat: error: the output .*busy is in use by another run \\(pid ${first.pid} on .*lock file .*busy\\.lock\\); wait for it to end, or stop it\\n$`,
        ),
      );
    }
    assert.ok(fs.existsSync(`${out}.checkpoint/state.json`), "the first run's checkpoint is untouched");
    // Crash recovery removes the temp folders of dead processes only.
    const dead = spawnSync(process.execPath, ['-e', '0']).pid;
    const live = `${out}.checkpoint.tmp-${first.pid}-abcdef`;
    const stale = `${out}.checkpoint.tmp-${dead}-abcdef`;
    for (const dir of [live, stale]) fs.mkdirSync(dir);
    recoverInterruptedSave(`${out}.checkpoint`);
    assert.ok(fs.existsSync(live), "a live process' temp folder is kept");
    assert.ok(!fs.existsSync(stale), "a dead process' temp folder is removed");
    fs.rmSync(live, { recursive: true });
  } finally {
    first.kill('SIGKILL');
    await new Promise((resolve) =>
      first.exitCode !== null || first.signalCode !== null ? resolve(null) : first.on('exit', resolve),
    );
  }
  const third = runCli([...args, '--epochs', '1']);
  assert.equal(third.status, 0, third.stderr);
  assert.match(
    third.stdout,
    new RegExp(`note: took over .*busy\\.lock, left by pid ${first.pid}, which is no longer running`),
  );
  assert.ok(!fs.existsSync(`${out}.lock`));
});

test('a model folder of another format version, or with a metadata field missing, is a one-line error naming it', async () => {
  const source = path.join(models, 'fe-imagenet'); // trained by the first test
  const edit = (name: string, change: (meta: Record<string, unknown>) => void): string => {
    const dir = path.join(models, `edited-${name}`);
    fs.cpSync(source, dir, { recursive: true });
    const meta = JSON.parse(fs.readFileSync(path.join(dir, 'metadata.json'), 'utf8')) as Record<string, unknown>;
    change(meta);
    fs.writeFileSync(path.join(dir, 'metadata.json'), JSON.stringify(meta));
    return dir;
  };
  const cases: Array<[string, (m: Record<string, unknown>) => void, RegExp]> = [
    [
      'old-format',
      (m) => (m.format = 'boat-model/0'),
      /model in format "boat-model\/0"; this version of boat reads boat-model\/1 only/,
    ],
    [
      'no-format',
      (m) => delete m.format,
      /model in no format field \(written before formats were recorded\); this version of boat reads boat-model\/1 only/,
    ],
    ['no-classes', (m) => delete m.classes, /boat-model\/1 metadata with "classes" missing or invalid/],
    ['no-input-size', (m) => delete m.inputSize, /boat-model\/1 metadata with "inputSize" missing or invalid/],
    ['no-files', (m) => delete m.files, /boat-model\/1 metadata with "files" missing or invalid/],
    ['bad-backbone', (m) => (m.backbone = 'imagenet'), /"backbone" missing or invalid/],
  ];
  for (const [name, change, message] of cases) {
    const dir = edit(name, change);
    await assert.rejects(
      loadBoatModel(dir),
      (err: Error) => err.name === 'UserError' && message.test(err.message) && !err.message.includes('\n'),
      name,
    );
  }
  const r = runCli([
    'evaluate',
    '--model',
    path.join(models, 'edited-old-format'),
    '--data',
    path.join(data, 'test'),
    '--out',
    path.join(work, 'eval-old'),
  ]);
  assert.equal(r.status, 2, r.stdout);
  assert.match(
    r.stderr,
    /^boat: error: .*metadata\.json: model in format "boat-model\/0"; this version of boat reads boat-model\/1 only/,
  );
  oneLine(r.stderr);
  const m = runCli([
    'evaluate',
    '--model',
    path.join(models, 'edited-no-classes'),
    '--data',
    path.join(data, 'test'),
    '--out',
    path.join(work, 'eval-no-classes'),
  ]);
  assert.equal(m.status, 2, m.stderr);
  oneLine(m.stderr);
});

test('a full disk while saving the model or a checkpoint: one line, and the previous one stays intact', () => {
  const out = path.join(models, 'disk');
  const args = [
    'train',
    '--mode',
    'feature-extractor',
    '--data',
    data,
    '--input-size',
    '32',
    '--batch-size',
    '4',
    '--seed',
    '1',
    '--cache',
    cache,
    '--out',
    out,
  ];
  assert.equal(runCli([...args, '--epochs', '1']).status, 0);
  const modelBefore = hashTree(out);
  const full = runCli([...args, '--epochs', '1'], REPO_ROOT, { BOAT_TEST_FULL_DISK: 'boat-model' });
  assert.equal(full.status, 2, full.stdout);
  assert.match(
    full.stderr,
    /^boat: error: cannot save .*disk: no space left on the device \(ENOSPC\); the previous one is unchanged; free some space and run again\n$/,
  );
  assert.deepEqual(hashTree(out), modelBefore, 'the previous model is intact');
  assert.equal(readModelMetadata(out).mode, 'feature-extractor');
  const leftovers = (): string[] => fs.readdirSync(models).filter((n) => /^disk.*\.(tmp|old)-/.test(n));
  assert.deepEqual(leftovers(), []);

  // Epoch 2's checkpoint cannot be written: epoch 1's stays, whole, and --resume continues from it.
  const checkpoint = `${out}.checkpoint`;
  const failed = runCli([...args, '--epochs', '3'], REPO_ROOT, { BOAT_TEST_FULL_DISK: 'boat-checkpoint:2' });
  assert.equal(failed.status, 2, failed.stdout);
  assert.match(
    failed.stderr,
    /^boat: error: cannot save .*disk\.checkpoint: no space left on the device \(ENOSPC\); the previous one is unchanged; free some space and run again\n$/,
  );
  assert.equal(JSON.parse(fs.readFileSync(path.join(checkpoint, 'state.json'), 'utf8')).epoch, 0);
  assert.deepEqual(leftovers(), []);
  assert.deepEqual(hashTree(out), modelBefore, 'a failed run does not touch the saved model');
  const resumed = runCli([...args, '--epochs', '3', '--resume']);
  assert.equal(resumed.status, 0, resumed.stderr);
  assert.match(resumed.stdout, /epoch 2\/3 train/);
  assert.doesNotMatch(resumed.stdout, /epoch 1\/3/);
});

/** Bounds on growth from the end of epoch 1 to the end of epoch 3 (docs/reliability.md states them). */
const WASM_HEAP_GROWTH_MAX_MB = 16;
const RSS_GROWTH_MAX_MB = 100;

test(`memory over 3 epochs: numTensors flat, wasm heap grows ≤ ${WASM_HEAP_GROWTH_MAX_MB} MB and RSS ≤ ${RSS_GROWTH_MAX_MB} MB after epoch 1`, async (t) => {
  if (wasmHeapMb() === null) {
    t.skip(`the ${tf.getBackend()} backend has no wasm heap to watch`);
    return;
  }
  for (const mode of ['finetune', 'feature-extractor'] as const) {
    const samples: Array<{ tensors: number; heapMb: number; rssMb: number }> = [];
    const sample = (): void => {
      samples.push({
        tensors: tf.memory().numTensors,
        heapMb: wasmHeapMb()!,
        rssMb: process.memoryUsage().rss / 2 ** 20,
      });
    };
    const progress = {
      batch: (): void => {},
      phase: (row: { phase: string }): void => (row.phase === 'val' ? sample() : undefined),
    };
    const before = tf.memory().numTensors;
    (await experiment({ mode, out: path.join(models, `memory-${mode}`), epochs: 3, progress })).model.dispose();
    assert.equal(tf.memory().numTensors, before, `${mode}: no tensor left once the model is disposed`);
    assert.equal(samples.length, 3);
    const line = samples
      .map((s) => `${s.tensors} tensors, heap ${s.heapMb.toFixed(0)} MB, RSS ${s.rssMb.toFixed(0)} MB`)
      .join(' → ');
    console.log(`${mode}: ${line}`);
    assert.equal(new Set(samples.map((s) => s.tensors)).size, 1, `${mode}: numTensors after each epoch: ${line}`);
    assert.ok(samples[2].heapMb - samples[0].heapMb <= WASM_HEAP_GROWTH_MAX_MB, `${mode}: wasm heap ${line}`);
    assert.ok(samples[2].rssMb - samples[0].rssMb <= RSS_GROWTH_MAX_MB, `${mode}: RSS ${line}`);
  }
});
