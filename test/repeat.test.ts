/**
 * `boat repeat`: the per-seed command lines, the aggregation (mean, min, max over the seeds that
 * succeeded), a failed seed reported in the table and the exit code; end to end on the demo set at 32 px.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { before, test } from 'node:test';

import sharp from 'sharp';

import {
  formatAlwaysWrong,
  formatRepeatTable,
  formatTestRecall,
  readRunMetrics,
  runRepeat,
  seedArgs,
  summarizeRuns,
  type SeedRun,
  wrongInEverySeed,
} from '../lib/train/repeat';
import { captionFontSize } from '../lib/plot/grid';
import { acquireLock, writeJsonAtomic } from '../lib/util';
import { runCli, tempDir } from './helpers';

const work = tempDir();
const data = path.join(work, 'data');

before(() => {
  assert.equal(
    runCli(['data', 'demo', '--out', path.join(data, 'boats'), '--per-class', '3', '--seed', '1']).status,
    0,
  );
  assert.equal(runCli(['data', 'split', '--data', path.join(data, 'boats'), '--out', data]).status, 0);
});

const run = (seed: number, valAcc: number | null, testAcc: number | null, ok = true): SeedRun => ({
  seed,
  out: `m/seed-${seed}`,
  code: ok ? 0 : 2,
  ok,
  valAcc,
  testAcc,
  seconds: 60,
  ...(ok ? {} : { error: 'exit 2' }),
});

test('seedArgs: --out becomes <out>/seed-S and --seed S is added; --seed in the command, no --out, or another command are refused', () => {
  assert.deepEqual(seedArgs(['train', '--out', 'models/x', '--epochs', '3'], 4), {
    args: ['train', '--out', path.join('models/x', 'seed-4'), '--epochs', '3', '--seed', '4'],
    out: path.join('models/x', 'seed-4'),
  });
  assert.deepEqual(seedArgs(['train', '--out=models/x'], -1).args, [
    'train',
    `--out=${path.join('models/x', 'seed--1')}`,
    '--seed',
    '-1',
  ]);
  assert.throws(() => seedArgs(['train', '--out', 'm', '--seed', '3'], 1), /leave --seed out/);
  assert.throws(() => seedArgs(['train', '--out', 'm', '--seed=3'], 1), /leave --seed out/);
  assert.throws(() => seedArgs(['train', '--epochs', '3'], 1), /needs --out/);
  assert.throws(() => seedArgs(['evaluate', '--out', 'm'], 1), /repeats train, not evaluate/);
  assert.throws(() => seedArgs([], 1), /give the command to repeat after --/);
});

test('summarizeRuns: mean, min and max over the seeds that succeeded; a failed seed is listed, not averaged', () => {
  const s = summarizeRuns([run(1, 0.9, 0.8), run(2, 0.7, 0.6), run(3, 0.5, null, false), run(4, 0.8, 1)]);
  assert.deepEqual(s.failed, [3]);
  assert.equal(s.val.n, 3);
  assert.ok(Math.abs(s.val.mean! - 0.8) < 1e-12);
  assert.deepEqual([s.val.min, s.val.max], [0.7, 0.9]);
  assert.equal(s.test.n, 3);
  assert.ok(Math.abs(s.test.mean! - 0.8) < 1e-12);
  assert.deepEqual([s.test.min, s.test.max], [0.6, 1]);
  // A run without a test set has no test figure: the test spread is over the others.
  const noTest = summarizeRuns([run(1, 0.9, null), run(2, 0.7, 0.5)]);
  assert.deepEqual([noTest.val.n, noTest.test.n, noTest.test.mean], [2, 1, 0.5]);
  assert.deepEqual(summarizeRuns([run(1, null, null, false)]).val, { n: 0, mean: null, min: null, max: null });
  const table = formatRepeatTable(s);
  assert.match(table, /^3 +0\.5000 +- +1\.0 +FAILED: exit 2$/m);
  assert.match(table, /^mean \(3 of 4\) +0\.8000 +0\.8000$/m);
  assert.match(table, /^min +0\.7000 +0\.6000$/m);
  assert.match(table, /^max +0\.9000 +1\.0000$/m);
  assert.match(table, /^1 of 4 seeds failed \(3\); the figures are over the others$/m);
});

test('the test photos each seed got wrong are counted over the seeds; every seed must have recorded them', () => {
  const wrong = (seed: number, files: string[]): SeedRun => ({
    ...run(seed, 0.9, 0.8),
    testWrong: files.map((file) => ({ file, actual: 'a', predicted: `p${seed}` })),
  });
  const s = summarizeRuns([
    wrong(1, ['test/a/1.jpg', 'test/b/2.jpg']),
    wrong(2, ['test/b/2.jpg', 'test/a/1.jpg', 'test/c/3.jpg']),
    { ...wrong(3, ['test/x.jpg']), ok: false },
    wrong(4, ['test/b/2.jpg']),
  ]);
  assert.deepEqual(s.testWrong, [
    { file: 'test/b/2.jpg', seeds: 3 },
    { file: 'test/a/1.jpg', seeds: 2 },
    { file: 'test/c/3.jpg', seeds: 1 },
  ]);
  assert.equal(
    formatAlwaysWrong(s),
    'Test photos wrong in all 3 seeds: 1 (test/b/2.jpg); wrong in some but not all: 2 (all in repeat.json)',
  );
  // Each photo wrong in every seed comes with the first succeeded seed's answer, for the grid's captions.
  assert.deepEqual(wrongInEverySeed(s), [{ file: 'test/b/2.jpg', actual: 'a', predicted: 'p1' }]);
  // A seed that did not record its mistakes (an older run): no count, rather than a wrong one.
  assert.equal(summarizeRuns([wrong(1, ['test/a/1.jpg']), run(2, 0.9, 0.8)]).testWrong, null);
  assert.equal(formatAlwaysWrong(summarizeRuns([run(2, 0.9, 0.8)])), '');
});

test('two-stage runs: each stage spread over the seeds and how often each was kept, as table columns', () => {
  const staged = (seed: number, s1: [number, number], s2: [number, number], kept: 'stage1' | 'stage2'): SeedRun => ({
    ...run(seed, kept === 'stage1' ? s1[0] : s2[0], kept === 'stage1' ? s1[1] : s2[1]),
    stages: { stage1: { valAcc: s1[0], testAcc: s1[1] }, stage2: { valAcc: s2[0], testAcc: s2[1] }, kept },
  });
  const s = summarizeRuns([
    staged(1, [0.9, 0.8], [0.95, 0.85], 'stage2'),
    staged(2, [0.9, 0.9], [0.8, 0.95], 'stage1'),
    run(3, null, null, false),
    staged(4, [0.7, 0.7], [0.8, 0.75], 'stage2'),
  ]);
  assert.ok(s.stages);
  assert.ok(Math.abs(s.stages.stage1.val.mean! - 2.5 / 3) < 1e-12);
  assert.ok(Math.abs(s.stages.stage2.test.mean! - 0.85) < 1e-12);
  assert.deepEqual([s.stages.stage2.val.min, s.stages.stage2.val.max, s.stages.stage2.val.n], [0.8, 0.95, 3]);
  assert.deepEqual(s.stages.kept, { stage1: 1, stage2: 2 });
  const table = formatRepeatTable(s);
  assert.match(
    table,
    /^seed +stage 1 val +stage 1 test +stage 2 val +stage 2 test +kept +val acc +test acc +minutes +result$/m,
  );
  assert.match(table, /^2 +0\.9000 +0\.9000 +0\.8000 +0\.9500 +stage 1 +0\.9000 +0\.9000 +1\.0 +ok$/m);
  assert.match(table, /^3 +- +- +- +- +- +- +- +1\.0 +FAILED: exit 2$/m);
  assert.match(table, /^mean \(3 of 4\) +0\.8333 +0\.8000 +0\.8500 +0\.8500 +0\.8833 +0\.8333$/m);
  assert.match(table, /^Kept by val accuracy: stage 1 in 1 of 3 seeds, stage 2 in 2$/m);
  // One run that is not two-stage: no stage columns, rather than a spread over some of the seeds.
  const mixed = summarizeRuns([staged(1, [0.9, 0.8], [0.95, 0.85], 'stage2'), run(2, 0.9, 0.8)]);
  assert.equal(mixed.stages, null);
  assert.doesNotMatch(formatRepeatTable(mixed), /stage 1|Kept/);
});

test("test recall per class: mean, min and max over the seeds, with each class's photos; none when the classes differ", () => {
  const recall = (seed: number, values: number[], classes = ['buoy', 'kayak']): SeedRun => ({
    ...run(seed, 0.9, 0.8),
    testRecall: values.map((r, i) => ({ class: classes[i], recall: r, support: 3 + i })),
  });
  const s = summarizeRuns([recall(1, [0, 1]), recall(2, [2 / 3, 0.5]), { ...recall(3, [1, 1]), ok: false }]);
  assert.deepEqual(
    s.testRecall!.map((c) => [c.class, c.support, c.recall.n, c.recall.min, c.recall.max]),
    [
      ['buoy', 3, 2, 0, 2 / 3],
      ['kayak', 4, 2, 0.5, 1],
    ],
  );
  assert.ok(Math.abs(s.testRecall![0].recall.mean! - 1 / 3) < 1e-12);
  const text = formatTestRecall(s);
  assert.match(text, /^Test recall per class over 2 seeds:$/m);
  assert.match(text, /^buoy +3 +0\.3333 +0\.0000 +0\.6667$/m);
  assert.match(text, /^kayak +4 +0\.7500 +0\.5000 +1\.0000$/m);
  assert.equal(summarizeRuns([recall(1, [1, 1]), recall(2, [1, 1], ['buoy', 'sailboat'])]).testRecall, null);
  assert.equal(summarizeRuns([recall(1, [1, 1]), run(2, 0.9, 0.8)]).testRecall, null);
  assert.equal(formatTestRecall(summarizeRuns([run(1, 0.9, 0.8)])), '');
});

test("readRunMetrics reads a recipe run's stages and its per-class test recall from metrics.json", () => {
  const out = path.join(work, 'metrics-only');
  fs.mkdirSync(out, { recursive: true });
  writeJsonAtomic(path.join(out, 'metrics.json'), {
    best_val_acc: 0.9,
    test_acc: 0.85,
    test: { perClass: [{ class: 'kayak', precision: 1, recall: 0.75, f1: 0.86, support: 4 }] },
    stages: { stage1: { val_acc: 0.9, test_acc: 0.85, lr: 0.01 }, stage2: { val_acc: 0.88, test_acc: 0.9, lr: 0.001 } },
    kept: 'stage1',
  });
  assert.deepEqual(readRunMetrics(out), {
    valAcc: 0.9,
    testAcc: 0.85,
    testRecall: [{ class: 'kayak', recall: 0.75, support: 4 }],
    stages: { stage1: { valAcc: 0.9, testAcc: 0.85 }, stage2: { valAcc: 0.88, testAcc: 0.9 }, kept: 'stage1' },
  });
  // A single-stage run records neither stages nor kept.
  writeJsonAtomic(path.join(out, 'metrics.json'), { best_val_acc: 0.9, test_acc: null });
  assert.deepEqual(readRunMetrics(out), { valAcc: 0.9, testAcc: null });
});

test("the grid's captions shrink to fit their tile: 14 px when short, never below 8", () => {
  assert.equal(captionFontSize('7.jpg: a → b', 220), 14);
  const long = '108.jpg: cruise_ship → ferry_boat';
  const size = captionFontSize(long, 220);
  assert.ok(size < 14 && 0.6 * size * long.length <= 220 - 8, `${size} px`);
  assert.equal(captionFontSize('x'.repeat(500), 220), 8);
});

test('runRepeat reads each seed metrics.json; a seed whose command fails, or succeeds without writing metrics, is a failure', async () => {
  const base = path.join(work, 'fake');
  const lines: string[] = [];
  const summary = await runRepeat({
    seeds: [1, 2, 3],
    args: ['train', '--out', base],
    log: (l) => lines.push(l),
    run: (args) => {
      const seed = Number(args[args.indexOf('--seed') + 1]);
      const out = args[args.indexOf('--out') + 1];
      if (seed === 2) return Promise.resolve(1);
      if (seed === 3) return Promise.resolve(0); // "succeeded" but wrote nothing
      fs.mkdirSync(out, { recursive: true });
      writeJsonAtomic(path.join(out, 'metrics.json'), { best_val_acc: 0.75, test_acc: 0.5 });
      return Promise.resolve(0);
    },
  });
  assert.deepEqual(
    summary.runs.map((r) => [r.seed, r.ok, r.valAcc, r.testAcc]),
    [
      [1, true, 0.75, 0.5],
      [2, false, null, null],
      [3, false, null, null],
    ],
  );
  assert.equal(summary.runs[1].error, 'exit 1');
  assert.match(summary.runs[2].error!, /no .*seed-3.*metrics\.json/);
  assert.deepEqual(summary.failed, [2, 3]);
  const saved = JSON.parse(fs.readFileSync(path.join(base, 'repeat.json'), 'utf8')) as { failed: number[] };
  assert.deepEqual(saved.failed, [2, 3]);
  assert.ok(lines.some((l) => /seed 2 FAILED \(exit 1\)/.test(l)));
  // The folder is boat repeat's; one it did not make, with files in it, is refused before any run.
  const user = path.join(work, 'user-folder');
  fs.mkdirSync(user);
  fs.writeFileSync(path.join(user, 'notes.txt'), 'mine');
  await assert.rejects(
    runRepeat({ seeds: [1], args: ['train', '--out', user], run: () => Promise.reject(new Error('must not run')) }),
    /exists and was not made by boat/,
  );
});

test('runRepeat into the folder of an earlier repeat of the same command adds its seeds; another command or an unreadable repeat.json starts afresh', async () => {
  const base = path.join(work, 'merge');
  const args = ['train', '--out', base];
  // Each seed's val accuracy is seed/10 plus 0.01 per time it ran, so a rerun seed is told from its first run.
  const runs = new Map<number, number>();
  const fake = (argv: string[]): Promise<number> => {
    const seed = Number(argv[argv.indexOf('--seed') + 1]);
    const out = argv[argv.indexOf('--out') + 1];
    if (seed === 9) return Promise.resolve(1);
    runs.set(seed, (runs.get(seed) ?? 0) + 1);
    fs.mkdirSync(out, { recursive: true });
    writeJsonAtomic(path.join(out, 'metrics.json'), { best_val_acc: seed / 10 + runs.get(seed)! / 100, test_acc: 0.5 });
    return Promise.resolve(0);
  };
  const lines: string[] = [];
  await runRepeat({ seeds: [1, 2, 9], args, run: fake, log: () => {} });
  const second = await runRepeat({ seeds: [3, 2], args, run: fake, log: (l) => lines.push(l) });
  assert.deepEqual(
    second.runs.map((r) => [r.seed, r.ok, r.valAcc, r.earlier ?? false]),
    [
      [1, true, 0.11, true],
      [2, true, 0.22, false],
      [3, true, 0.31, false],
      [9, false, null, true],
    ],
  );
  assert.equal(second.val.n, 3);
  assert.ok(Math.abs(second.val.mean! - (0.11 + 0.22 + 0.31) / 3) < 1e-12);
  assert.deepEqual(second.failed, [9]);
  assert.ok(lines.some((l) => /seeds 1,9 from an earlier repeat of this command join the summary/.test(l)));
  const saved = JSON.parse(fs.readFileSync(path.join(base, 'repeat.json'), 'utf8')) as { seeds: number[] };
  assert.deepEqual(saved.seeds, [1, 2, 3, 9]);
  assert.match(formatRepeatTable(second), /^1 +0\.1100 +0\.5000 +\d+\.\d +ok \(earlier\)$/m);
  assert.match(formatRepeatTable(second), /^9 +- +- +\d+\.\d +FAILED: exit 1 \(earlier\)$/m);

  // Another command into the same folder: its summary is of its own seeds, and says why.
  lines.length = 0;
  const other = await runRepeat({ seeds: [4], args: [...args, '--epochs', '2'], run: fake, log: (l) => lines.push(l) });
  assert.deepEqual(
    other.runs.map((r) => r.seed),
    [4],
  );
  assert.ok(
    lines.some((l) =>
      /repeat\.json is the summary of another command \(boat train --out .*\); this run's summary replaces it/.test(l),
    ),
  );
  fs.writeFileSync(path.join(base, 'repeat.json'), '{ not json');
  lines.length = 0;
  const fresh = await runRepeat({ seeds: [5], args, run: fake, log: (l) => lines.push(l) });
  assert.deepEqual(
    fresh.runs.map((r) => r.seed),
    [5],
  );
  assert.ok(lines.some((l) => /repeat\.json is unreadable; this run's summary replaces it/.test(l)));
});

test('boat repeat end to end: a table over the seeds; a seed that cannot run is reported in it and exits 1', async () => {
  const out = path.join(work, 'models', 'fe');
  fs.mkdirSync(path.dirname(out));
  const TRAIN = [
    'train',
    '--mode',
    'feature-extractor',
    '--data',
    data,
    '--out',
    out,
    '--input-size',
    '32',
    '--epochs',
    '2',
    '--batch-size',
    '4',
    '--cache',
    path.join(work, 'cache'),
  ];
  const ok = runCli(['repeat', '--seeds', '1,2', '--', ...TRAIN]);
  assert.equal(ok.status, 0, ok.stderr);
  const valOf = (seed: number): number =>
    (JSON.parse(fs.readFileSync(path.join(out, `seed-${seed}`, 'metrics.json'), 'utf8')) as { best_val_acc: number })
      .best_val_acc;
  const [v1, v2] = [valOf(1), valOf(2)];
  assert.match(ok.stdout, new RegExp(`^mean \\(2 of 2\\) +${((v1 + v2) / 2).toFixed(4)} `, 'm'));
  assert.match(ok.stdout, new RegExp(`^min +${Math.min(v1, v2).toFixed(4)} `, 'm'));
  assert.match(ok.stdout, new RegExp(`^max +${Math.max(v1, v2).toFixed(4)} `, 'm'));
  const config = JSON.parse(fs.readFileSync(path.join(out, 'seed-2', 'config.json'), 'utf8')) as { seed: number };
  assert.equal(config.seed, 2);
  // Each seed lists the test photos it got wrong, as many as its accuracy says; the photos both got wrong are printed.
  const wrongOf = (seed: number): string[] => {
    const m = JSON.parse(fs.readFileSync(path.join(out, `seed-${seed}`, 'metrics.json'), 'utf8')) as {
      test_acc: number;
      test: { samples: number };
      test_misclassified: Array<{ file: string }>;
    };
    assert.equal(m.test_misclassified.length, Math.round((1 - m.test_acc) * m.test.samples));
    for (const w of m.test_misclassified) assert.ok(fs.existsSync(path.join(data, w.file)), w.file);
    return m.test_misclassified.map((w) => w.file);
  };
  const both = wrongOf(1).filter((f) => wrongOf(2).includes(f));
  assert.match(ok.stdout, new RegExp(`^Test photos wrong in all 2 seeds: ${both.length}\\b`, 'm'));
  // Each class's test recall over the two seeds, every class of the demo set listed.
  assert.match(ok.stdout, /^Test recall per class over 2 seeds:$/m);
  for (const c of fs.readdirSync(path.join(data, 'test')).filter((f) => !f.startsWith('.')))
    assert.match(ok.stdout, new RegExp(`^${c} +\\d+ +[0-9.]+ `, 'm'));
  // Those photos as one grid, five to a row, 220 px tiles (and no grid when there are none).
  const grid = path.join(out, 'test-wrong-in-every-seed.png');
  assert.equal(fs.existsSync(grid), both.length > 0);
  if (both.length > 0) {
    const meta = await sharp(grid).metadata();
    assert.equal(meta.width, Math.min(5, both.length) * 220);
    assert.match(ok.stdout, /Those photos, each with what the first seed predicted: .*test-wrong-in-every-seed\.png/);
  }

  // Seed 3's output is in use by another run (this process holds its lock): that seed fails, the others run.
  const lock = acquireLock(`${path.join(out, 'seed-3')}.lock`, 'seed 3');
  try {
    const r = runCli(['repeat', '--seeds', '1,3', '--', ...TRAIN]);
    assert.equal(r.status, 1, r.stdout);
    assert.match(r.stdout, /^3 +- +- +\d+\.\d +FAILED: exit 2$/m);
    // Seed 2, from the first repeat of the same command and not run again, joins the summary.
    assert.match(r.stdout, new RegExp(`^2 +${v2.toFixed(4)} .* ok \\(earlier\\)$`, 'm'));
    assert.match(r.stdout, /^mean \(2 of 3\) /m);
    assert.equal(r.stderr.trim().split('\n').at(-1), 'boat: error: 1 of 2 seeds failed (3); see the table');
  } finally {
    lock.release();
  }
  const bad = runCli(['repeat', '--seeds', '1,1', '--', ...TRAIN]);
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /Expected distinct seeds/);
  const seeded = runCli(['repeat', '--seeds', '1', '--', ...TRAIN, '--seed', '4']);
  assert.equal(seeded.status, 2);
  assert.match(seeded.stderr, /^boat: error: leave --seed out of the repeated command/);
});
