/**
 * Reliability on what users really point the tool at: the bad-input corpus (test/fixtures/bad-corpus.ts)
 * through every command, saves killed midway, and read-only output folders. Every entry must either
 * decode or be skipped with a one-line reason; nothing crashes and no user file changes.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { before, test } from 'node:test';

import { DataLoader, evalTransforms, ImageFolder, trainTransforms } from '../lib/images';
import { BadCorpus, makeBadCorpus } from './fixtures/bad-corpus';
import { hashTree, REPO_ROOT, runCli, tempDir } from './helpers';

let work: string;
let corpus: BadCorpus;
let corpusHashes: Record<string, string>;
let split: string;
let cache: string;

before(async () => {
  work = tempDir();
  corpus = await makeBadCorpus(work);
  corpusHashes = hashTree(corpus.root);
  split = path.join(work, 'split');
  cache = path.join(work, 'cache');
});

/** No stack trace anywhere in what the user sees. */
function assertNoStackTrace(r: { stdout: string; stderr: string }): void {
  assert.doesNotMatch(`${r.stdout}\n${r.stderr}`, /\n\s+at .*:\d+:\d+\)?\n/);
}

function ok(r: { status: number; stdout: string; stderr: string }, what: string): void {
  assert.equal(r.status, 0, `${what} failed:\n${r.stdout}\n${r.stderr}`);
  assertNoStackTrace(r);
}

const relative = (file: string): string => path.relative(corpus.root, file);
const skipsExpected = (): Array<[string, RegExp]> =>
  Object.entries(corpus.entries).flatMap(([rel, e]) => ('skip' in e ? [[rel, e.skip] as [string, RegExp]] : []));
const decodesExpected = (): string[] =>
  Object.entries(corpus.entries).flatMap(([rel, e]) => ('decode' in e ? [rel] : []));

test('audit: each odd entry is read or reported with its reason', () => {
  const r = runCli(['data', 'audit', '--data', corpus.root, '--json']);
  ok(r, 'audit');
  const report = JSON.parse(r.stdout) as {
    images: number;
    unreadable: Array<{ path: string; reason: string }>;
    skipped: Array<{ path: string; reason: string }>;
  };
  const reasons = new Map([...report.unreadable, ...report.skipped].map((s) => [relative(s.path), s.reason]));
  for (const [rel, pattern] of skipsExpected()) {
    assert.ok(reasons.has(rel), `${rel} should be reported`);
    assert.match(reasons.get(rel)!, pattern, rel);
    assert.doesNotMatch(reasons.get(rel)!, /\n/);
  }
  for (const rel of decodesExpected())
    assert.ok(!reasons.has(rel), `${rel} should be readable, got: ${reasons.get(rel)}`);
  assert.equal(report.images, 3 * 6 + decodesExpected().length);
});

test("split: lists what it skipped and keeps every image (bad ones are the loaders' to skip)", () => {
  const r = runCli(['data', 'split', '--data', corpus.root, '--out', split, '--seed', '1']);
  ok(r, 'split');
  for (const [rel, pattern] of skipsExpected()) {
    if (rel === 'sailboat/truncated.jpg') continue; // an image file by name: split keeps it, decoding is the loaders' job
    assert.match(r.stdout, new RegExp(`${rel.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: .*`), `split should list ${rel}`);
    assert.match(
      r.stdout.split('\n').find((l) => l.includes(rel))!,
      pattern,
    );
  }
  assert.match(r.stdout, /ferry boat – färja\s+\d+/);
});

test('DataLoader: every decodable entry becomes a finite 224×224 RGB sample, the rest are reported skips', async () => {
  for (const transform of [evalTransforms(), trainTransforms()]) {
    const dataset = new ImageFolder(corpus.root, transform);
    const loader = new DataLoader(dataset, { batchSize: 8, seed: 3 });
    const seen = new Set<string>();
    for await (const batch of loader.batches(0)) {
      assert.deepEqual(batch.x.shape.slice(1), [224, 224, 3]);
      const values = await batch.x.data();
      assert.ok(values.every(Number.isFinite));
      batch.indices.forEach((i) => seen.add(relative(dataset.samples[i].file)));
      batch.x.dispose();
      batch.y.dispose();
    }
    for (const rel of decodesExpected()) assert.ok(seen.has(rel), `${rel} was not loaded (${transform.name})`);
    const skipped = new Map(dataset.skipped.map((s) => [relative(s.path), s.reason]));
    for (const [rel, pattern] of skipsExpected()) {
      assert.ok(!seen.has(rel), `${rel} should not be loaded`);
      assert.match(skipped.get(rel) ?? '', pattern, `${rel} should be a reported skip`);
    }
  }
});

test('train, evaluate and predict over the corpus: no crash, skips listed in the run summary', () => {
  const model = path.join(work, 'models', 'fe');
  const train = runCli([
    'train',
    '--mode',
    'feature-extractor',
    '--data',
    split,
    '--out',
    model,
    '--epochs',
    '2',
    '--batch-size',
    '8',
    '--cache',
    cache,
  ]);
  ok(train, 'train');
  const truncatedSubset = ['train', 'val', 'test'].find((s) =>
    fs.existsSync(path.join(split, s, 'sailboat', 'truncated.jpg')),
  )!;
  assert.match(train.stdout, /Skipped 1 entry/);
  assert.match(train.stdout, new RegExp(`${truncatedSubset}/sailboat/truncated\\.jpg: cannot decode`));
  const metrics = JSON.parse(fs.readFileSync(path.join(model, 'metrics.json'), 'utf8')) as {
    skipped: Array<{ path: string }>;
  };
  assert.deepEqual(
    metrics.skipped.map((s) => path.basename(s.path)),
    ['truncated.jpg'],
  );

  const evaluate = runCli([
    'evaluate',
    '--model',
    model,
    '--data',
    path.join(split, 'test'),
    '--out',
    path.join(work, 'eval'),
  ]);
  ok(evaluate, 'evaluate');
  assert.match(evaluate.stdout, /accuracy/i);
  if (truncatedSubset === 'test') assert.match(evaluate.stdout, /truncated\.jpg: cannot decode/);

  const files = Object.keys(corpus.entries).filter((rel) => fs.lstatSync(path.join(corpus.root, rel)).isFile());
  const predict = runCli([
    'predict',
    '--model',
    model,
    '--json',
    ...files.map((rel) => path.join(corpus.root, rel)),
    path.join(work, 'no-such.jpg'),
  ]);
  ok(predict, 'predict');
  const results = new Map(
    (JSON.parse(predict.stdout) as Array<{ file: string; top?: unknown[]; error?: string }>).map((p) => [
      relative(p.file),
      p,
    ]),
  );
  for (const rel of decodesExpected())
    assert.equal(results.get(rel)?.top?.length, 3, `${rel}: ${results.get(rel)?.error}`);
  for (const rel of ['sailboat/truncated.jpg', 'sailboat/zero.jpg', 'sailboat/notes.txt', 'kayak/.DS_Store']) {
    assert.match(results.get(rel)?.error ?? '', /not a readable image|cannot decode/, rel);
  }
  assert.match(results.get(path.relative(corpus.root, path.join(work, 'no-such.jpg')))?.error ?? '', /file not found/);
});

test('a data folder that does not exist is a one-line error for every command', () => {
  const missing = path.join(work, 'nope');
  const model = path.join(work, 'models', 'fe');
  for (const args of [
    ['data', 'audit', '--data', missing],
    ['data', 'split', '--data', missing, '--out', path.join(work, 'x')],
    ['train', '--mode', 'feature-extractor', '--data', missing, '--out', path.join(work, 'models', 'y')],
    ['evaluate', '--model', model, '--data', missing],
  ]) {
    const r = runCli(args);
    assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, /^boat: error: .*(not found|does not exist)[^\n]*\n$/);
    assertNoStackTrace(r);
  }
});

test('SIGKILL while saving a model: the previous model is still there, loads, and gives the same results', () => {
  const model = path.join(work, 'models', 'fe');
  const args = [
    'train',
    '--mode',
    'feature-extractor',
    '--data',
    split,
    '--out',
    model,
    '--epochs',
    '1',
    '--batch-size',
    '8',
    '--cache',
    cache,
  ];
  const evaluateBefore = runCli([
    'evaluate',
    '--model',
    model,
    '--data',
    path.join(split, 'val'),
    '--out',
    path.join(work, 'eval-before'),
  ]);
  ok(evaluateBefore, 'evaluate before');
  const metadataBefore = fs.readFileSync(path.join(model, 'metadata.json'), 'utf8');
  for (const stage of ['build', 'swap']) {
    const killed = spawnSync(process.execPath, [path.join(REPO_ROOT, 'bin', 'boat.js'), ...args], {
      encoding: 'utf8',
      env: { ...process.env, BOAT_TEST_KILL_IN_SAVE: `boat-model:${stage}` },
    });
    assert.equal(killed.signal, 'SIGKILL', `the ${stage} kill did not happen:\n${killed.stdout}\n${killed.stderr}`);
    const after = runCli([
      'evaluate',
      '--model',
      model,
      '--data',
      path.join(split, 'val'),
      '--out',
      path.join(work, `eval-${stage}`),
    ]);
    ok(after, `evaluate after a kill during ${stage}`);
    assert.equal(fs.readFileSync(path.join(model, 'metadata.json'), 'utf8'), metadataBefore);
    const results = (stdout: string): string => stdout.split(/^Skipped/m)[0];
    assert.equal(results(after.stdout), results(evaluateBefore.stdout));
    assert.deepEqual(
      fs.readdirSync(path.dirname(model)).filter((n) => /\.(tmp|old)-/.test(n)),
      [],
      'leftovers of the killed save are cleaned up',
    );
  }
});

test('SIGKILL while saving a checkpoint: --resume starts from the previous complete one', () => {
  const model = path.join(work, 'models', 'resume');
  const args = [
    'train',
    '--mode',
    'feature-extractor',
    '--data',
    split,
    '--out',
    model,
    '--epochs',
    '3',
    '--batch-size',
    '8',
    '--cache',
    cache,
    '--seed',
    '5',
  ];
  // Epoch 2's checkpoint save dies between the two renames of the swap.
  const killed = spawnSync(process.execPath, [path.join(REPO_ROOT, 'bin', 'boat.js'), ...args], {
    encoding: 'utf8',
    env: { ...process.env, BOAT_TEST_KILL_IN_SAVE: 'boat-checkpoint:swap:2' },
  });
  assert.equal(killed.signal, 'SIGKILL');
  assert.ok(!fs.existsSync(`${model}.checkpoint`), 'the kill left the checkpoint moved aside');
  const resumed = runCli([...args, '--resume']);
  ok(resumed, 'resume');
  const history = fs.readFileSync(path.join(model, 'history.csv'), 'utf8').trim().split('\n');
  assert.equal(history.length, 1 + 3 * 2, 'three epochs of train and val rows');
  const straight = path.join(work, 'models', 'straight');
  ok(
    runCli([
      'train',
      '--mode',
      'feature-extractor',
      '--data',
      split,
      '--out',
      straight,
      '--epochs',
      '3',
      '--batch-size',
      '8',
      '--cache',
      cache,
      '--seed',
      '5',
    ]),
    'uninterrupted',
  );
  const metric = (dir: string): unknown =>
    (JSON.parse(fs.readFileSync(path.join(dir, 'metrics.json'), 'utf8')) as { best_val_acc: number }).best_val_acc;
  assert.equal(metric(model), metric(straight));
  assert.equal(
    fs
      .readFileSync(path.join(model, 'head', 'weights.bin'))
      .equals(fs.readFileSync(path.join(straight, 'head', 'weights.bin'))),
    true,
  );
});

test('a damaged checkpoint file is a clear error naming it', () => {
  const checkpoint = path.join(work, 'models', 'resume.checkpoint');
  const bin = path.join(checkpoint, 'weights.bin');
  const copy = path.join(work, 'damaged');
  fs.cpSync(checkpoint, `${copy}.checkpoint`, { recursive: true });
  const data = fs.readFileSync(bin);
  data[data.length - 1] ^= 0xff;
  fs.writeFileSync(path.join(`${copy}.checkpoint`, 'weights.bin'), data);
  const r = runCli([
    'train',
    '--mode',
    'feature-extractor',
    '--data',
    split,
    '--out',
    copy,
    '--epochs',
    '4',
    '--batch-size',
    '8',
    '--cache',
    cache,
    '--seed',
    '5',
    '--resume',
  ]);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /^boat: error: checkpoint file damaged \(SHA-256 mismatch\): .*weights\.bin\n$/);
});

/**
 * Makes `dir` unwritable for this process: chmod for an ordinary user; for root, who may write anywhere,
 * the immutable attribute (chattr +i). Returns how to undo it, or why it cannot be done here.
 */
function makeReadOnly(dir: string): { undo: () => void } | { reason: string } {
  if (process.getuid?.() !== 0) {
    fs.chmodSync(dir, 0o555);
    return { undo: () => fs.chmodSync(dir, 0o755) };
  }
  const r = spawnSync('chattr', ['+i', dir], { encoding: 'utf8' });
  if (r.status !== 0)
    return { reason: `running as root and chattr +i is not possible here (${(r.stderr || String(r.error)).trim()})` };
  return { undo: () => spawnSync('chattr', ['-i', dir]) };
}

test('a read-only output folder is a clear error before any work starts', (t) => {
  const ro = path.join(work, 'read-only');
  fs.mkdirSync(ro);
  const lock = makeReadOnly(ro);
  if ('reason' in lock) {
    t.skip(lock.reason);
    return;
  }
  const model = path.join(work, 'models', 'fe');
  try {
    for (const args of [
      ['train', '--mode', 'feature-extractor', '--data', split, '--out', path.join(ro, 'model'), '--cache', cache],
      ['data', 'split', '--data', corpus.root, '--out', path.join(ro, 'split')],
      ['evaluate', '--model', model, '--data', path.join(split, 'test'), '--out', path.join(ro, 'eval')],
      ['predict', '--model', model, '--png', path.join(ro, 'png'), path.join(corpus.root, 'kayak', 'kayak 0.jpg')],
    ]) {
      const r = runCli(args);
      assert.equal(r.status, 2, `${args[0]}: ${r.stdout}\n${r.stderr}`);
      assert.match(r.stderr, /^boat: error: output folder is not writable: [^\n]*\n$/);
      assert.doesNotMatch(r.stdout, /Using|features|Split into/, 'no work before the error');
    }
    assert.deepEqual(fs.readdirSync(ro), []);
  } finally {
    lock.undo();
  }
});

test('no user file was created, deleted or modified by any of the above', () => {
  assert.deepEqual(hashTree(corpus.root), corpusHashes);
});
