/**
 * `boat data issues` and the split's --exclude / --relabel: planted label errors found by confident
 * learning, planted near-duplicates found by both methods, photos never touched, tensors flat, bad
 * images reported as skips. The backbone runs once per demo picture; the feature cache is shared by the tests.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { before, test } from 'node:test';
import sharp from 'sharp';
import * as tf from '../lib/engine/tf';

import { makeDemoDataset, readSplitCsv, scanImageFolder, splitDataset } from '../lib/data';
import {
  confidentJoint,
  confidentThresholds,
  crossValidatedProbabilities,
  DataIssuesResult,
  EMBEDDING_THRESHOLD,
  embeddingPairs,
  findDataIssues,
  findLabelIssues,
  PHASH_MAX_DISTANCE,
  pruneCounts,
  roundPreservingRowTotals,
  stratifiedFolds,
} from '../lib/quality';
import { UserError } from '../lib/util';
import { hashTree, makeImageFolder, runCli, SHARED_PHOTOS, tempDir } from './helpers';

const work = tempDir('boat-quality-');
const cacheDir = path.join(work, 'cache');
const demo = path.join(work, 'demo');
const PER_CLASS = 40;

before(async () => {
  await makeDemoDataset({ out: demo, perClass: PER_CLASS, seed: 7 });
});

function copyTree(from: string, to: string): void {
  fs.cpSync(from, to, { recursive: true, filter: (src) => !path.basename(src).startsWith('.boat-generated') });
}

test('confident learning by hand: thresholds, the calibrated joint, pruning, the rule that agreeing predictions are no issue', () => {
  // Six samples, two classes; sample 2 is labelled 0 but looks like 1, sample 5 is labelled 1 but is unsure.
  const probs = [
    [0.9, 0.1],
    [0.8, 0.2],
    [0.2, 0.8],
    [0.1, 0.9],
    [0.3, 0.7],
    [0.55, 0.45],
  ];
  const labels = [0, 0, 0, 1, 1, 1];
  const t = confidentThresholds(probs, labels, 2);
  assert.ok(
    Math.abs(t[0] - (0.9 + 0.8 + 0.2) / 3) < 1e-12 && Math.abs(t[1] - (0.9 + 0.7 + 0.45) / 3) < 1e-12,
    String(t),
  );
  // t = [0.633, 0.683]: sample 2 is confidently 1 (given 0); sample 5 passes neither threshold (0.55 < 0.633).
  assert.deepEqual(confidentJoint(probs, labels, 2), [
    [2, 1],
    [0, 3],
  ]);
  assert.deepEqual(
    pruneCounts([
      [2, 1],
      [0, 3],
    ]),
    [
      [2, 0],
      [1, 3],
    ],
  );
  const issues = findLabelIssues(probs, labels, 2);
  assert.deepEqual(
    issues.map((i) => [i.index, i.given, i.suggested, i.rank]),
    [[2, 0, 1, 1]],
  );
  assert.equal(issues[0].score, 0.2);
  // Rounding keeps each row's total.
  assert.deepEqual(
    roundPreservingRowTotals([
      [0.4, 0.4, 0.2],
      [2.5, 0.5, 0],
    ]),
    [
      [1, 0, 0],
      [2, 1, 0],
    ],
  );
});

test('stratified folds: every class spread over all folds within one', () => {
  const labels = Int32Array.from([...Array(23).fill(0), ...Array(7).fill(1), ...Array(3).fill(2)]);
  const folds = stratifiedFolds(labels, 5, 3);
  for (const c of [0, 1, 2]) {
    const per = [0, 0, 0, 0, 0];
    labels.forEach((l, i) => l === c && per[folds[i]]++);
    assert.ok(Math.max(...per) - Math.min(...per) <= 1, `class ${c}: ${per}`);
  }
  assert.deepEqual(stratifiedFolds(labels, 5, 3), folds);
});

/** Moves 5% of the demo pictures, spread over the classes, into another class's folder. */
function plantLabelErrors(root: string): Map<string, { from: string; to: string }> {
  const classes = fs
    .readdirSync(root)
    .filter((c) => !c.startsWith('.'))
    .sort();
  const total = classes.reduce((n, c) => n + fs.readdirSync(path.join(root, c)).length, 0);
  const planted = new Map<string, { from: string; to: string }>();
  const perClass = Math.round((0.05 * total) / classes.length);
  classes.forEach((c, k) => {
    const names = fs.readdirSync(path.join(root, c)).sort();
    for (let m = 0; m < perClass; m++) {
      const to = classes[(k + 1 + m) % classes.length];
      const name = names[3 + 7 * m];
      fs.renameSync(path.join(root, c, name), path.join(root, to, name));
      planted.set(`${to}/${name}`, { from: c, to });
    }
  });
  return planted;
}

let labelRun:
  { root: string; planted: Map<string, { from: string; to: string }>; result: DataIssuesResult } | undefined;

test('planted label errors: 5% of the demo set moved to a wrong class folder are found with precision and recall >= 0.8', async () => {
  const root = path.join(work, 'mislabelled');
  copyTree(demo, root);
  const planted = plantLabelErrors(root);
  assert.equal(planted.size, Math.round(0.05 * 5 * PER_CLASS));
  const before = tf.memory().numTensors;
  const result = await findDataIssues({ data: root, cacheDir, seed: 1 });
  assert.equal(tf.memory().numTensors, before, 'no tensor left behind by a whole run');
  const found = result.report.label_issues;
  const hits = found.filter((i) => planted.has(i.path));
  const precision = hits.length / Math.max(1, found.length);
  const recall = hits.length / planted.size;
  const detail = found
    .map((i) => `${i.rank} ${i.path} ${i.given}->${i.suggested} ${i.score}${planted.has(i.path) ? ' planted' : ''}`)
    .join('\n');
  console.log(
    `planted label errors: ${planted.size}, reported ${found.length}, precision ${precision.toFixed(3)}, recall ${recall.toFixed(3)}, cross-validated accuracy ${result.report.cross_validated_accuracy}`,
  );
  assert.ok(
    precision >= 0.8 && recall >= 0.8,
    `precision ${precision.toFixed(2)}, recall ${recall.toFixed(2)}\n${detail}`,
  );
  // Each found planted error is given its folder's class and the true class is suggested.
  for (const i of hits)
    assert.deepEqual([i.given, i.suggested], [planted.get(i.path)!.to, planted.get(i.path)!.from], i.path);
  assert.deepEqual(
    found.map((i) => i.rank),
    found.map((_, k) => k + 1),
  );
  for (let k = 1; k < found.length; k++) assert.ok(found[k - 1].score <= found[k].score, 'ranked by self-confidence');
  assert.equal(result.report.images, 5 * PER_CLASS);
  assert.equal(result.report.folds, 5);
  labelRun = { root, planted, result };
});

/** The four edits of the issue, each applied to its own original. */
async function plantNearDuplicates(
  originals: string[],
  dir: string,
): Promise<Array<{ original: string; copy: string; edit: string }>> {
  const out = [];
  const edits: Array<[string, (file: string) => Promise<Buffer>]> = [
    [
      'resized to 60%',
      async (f) => {
        const m = await sharp(f).metadata();
        return sharp(f)
          .resize(Math.round(m.width * 0.6))
          .jpeg()
          .toBuffer();
      },
    ],
    ['JPEG quality 40', async (f) => sharp(f).jpeg({ quality: 40 }).toBuffer()],
    [
      'centre crop 90%',
      async (f) => {
        const m = await sharp(f).metadata();
        const [w, h] = [Math.round(m.width * 0.9), Math.round(m.height * 0.9)];
        return sharp(f)
          .extract({ left: Math.floor((m.width - w) / 2), top: Math.floor((m.height - h) / 2), width: w, height: h })
          .jpeg({ quality: 90 })
          .toBuffer();
      },
    ],
    ['brightened 10%', async (f) => sharp(f).modulate({ brightness: 1.1 }).jpeg({ quality: 90 }).toBuffer()],
  ];
  for (const [k, [edit, make]] of edits.entries()) {
    const copy = path.join(dir, `copy_${k}.jpg`);
    fs.writeFileSync(copy, await make(originals[k]));
    out.push({ original: originals[k], copy, edit });
  }
  return out;
}

async function checkNearDuplicates(source: string, pick: (files: string[]) => string[], label: string): Promise<void> {
  const root = path.join(work, `dups-${label}`);
  const files = pick(scanImageFolder(source).files.map((f) => f.file));
  assert.equal(files.length, 24);
  const [originals, distinct] = [files.slice(0, 4), files.slice(4)];
  fs.mkdirSync(path.join(root, 'boats'), { recursive: true });
  const place = (f: string, name: string): string => {
    const to = path.join(root, 'boats', name);
    fs.copyFileSync(f, to);
    return to;
  };
  const placedOriginals = originals.map((f, k) => place(f, `original_${k}.jpg`));
  distinct.forEach((f, k) => place(f, `distinct_${k}.jpg`));
  const planted = await plantNearDuplicates(placedOriginals, path.join(root, 'boats'));
  const result = await findDataIssues({ data: root, cacheDir, folds: 2 });
  const groups = result.report.near_duplicates;
  const groupOf = (method: 'embedding' | 'phash', file: string) =>
    groups.find(
      (g) => (g.method === method || g.method === 'both') && g.paths.includes(`boats/${path.basename(file)}`),
    );
  const seen = planted
    .map(
      (p) =>
        `${p.edit}: ${(['embedding', 'phash'] as const)
          .map((m) => {
            const g = groupOf(m, p.copy);
            return g ? `${g.method} ${g.similarity}` : `no ${m} group`;
          })
          .join(', ')}`,
    )
    .join('; ');
  console.log(`near-duplicates (${label}): ${seen}`);
  // What each method must catch: the perceptual hash is not crop-invariant (a 90% crop moves its low
  // frequencies: 2 to 17 bits on the real photos), and a 10% brightening can move the embedding below the
  // threshold; each is caught by the other method.
  const expected: Record<string, Array<'embedding' | 'phash'>> = {
    'resized to 60%': ['embedding', 'phash'],
    'JPEG quality 40': ['embedding', 'phash'],
    'centre crop 90%': ['embedding'],
    'brightened 10%': ['phash'],
  };
  for (const p of planted) {
    const names = [path.basename(p.original), path.basename(p.copy)].map((n) => `boats/${n}`).sort();
    for (const method of expected[p.edit]) {
      const group = groupOf(method, p.copy);
      assert.ok(group, `${label}, ${method}: the copy ${p.edit} is in no group (${seen})`);
      assert.deepEqual(
        [...group.paths].sort(),
        names,
        `${label}, ${method}: ${p.edit} is grouped with its original only`,
      );
    }
  }
  const grouped = groups.flatMap((g) => g.paths).filter((p) => p.includes('distinct_'));
  assert.deepEqual(grouped, [], `${label}: distinct photos grouped: ${JSON.stringify(groups)}`);
}

test('planted near-duplicates in the demo set: each edit grouped with its original by both methods, twenty distinct pictures not grouped', async () => {
  // One class at a time keeps the distinct pictures as alike as the set has: same kind of boat, sky and water.
  await checkNearDuplicates(
    demo,
    (files) => [
      ...files.filter((f) => f.includes('sailboat')).slice(0, 12),
      ...files.filter((f) => f.includes('gondola')).slice(0, 12),
    ],
    'demo',
  );
});

test(
  'planted near-duplicates in the real photos (when present)',
  { skip: !fs.existsSync(SHARED_PHOTOS) && 'no ../shared/data/boat-types on this machine' },
  async () => {
    await checkNearDuplicates(
      SHARED_PHOTOS,
      (files) => [
        ...files.filter((f) => f.includes('/sailboat/')).slice(0, 12),
        ...files.filter((f) => f.includes('/kayak/')).slice(0, 12),
      ],
      'real',
    );
  },
);

test('the thresholds are the documented ones', async () => {
  assert.equal(EMBEDDING_THRESHOLD, 0.93);
  assert.equal(PHASH_MAX_DISTANCE, 10);
  // A feature row against itself, rescaled, and against an orthogonal row.
  const dim = 4;
  const pairs = await embeddingPairs(Float32Array.from([1, 2, 0, 0, 2, 4, 0, 0, 0, 0, 3, 1]), dim);
  assert.deepEqual(
    pairs.map((p) => [p.a, p.b, +p.similarity.toFixed(5)]),
    [[0, 1, 1]],
  );
});

test('cross-validation leaves no tensors behind and predicts every sample out of fold', async () => {
  const dim = 8;
  const n = 60;
  const features = new Float32Array(n * dim);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    labels[i] = i % 3;
    features[i * dim + labels[i]] = 5;
    features[i * dim + 3 + (i % 5)] = 1;
  }
  const before = tf.memory().numTensors;
  const cv = await crossValidatedProbabilities(features, dim, labels, 3, { folds: 4, epochs: 20, batchSize: 16 });
  assert.equal(tf.memory().numTensors, before);
  assert.equal(cv.probabilities.length, n);
  assert.ok(cv.accuracy > 0.9, `accuracy ${cv.accuracy}`);
  for (const p of cv.probabilities) assert.ok(Math.abs(p.reduce((a, b) => a + b, 0) - 1) < 1e-4);
  await assert.rejects(
    crossValidatedProbabilities(features, dim, labels, 3, { folds: 1 }),
    /--folds must be an integer of at least 2/,
  );
});

test('bad images are reported as skips and the run goes on', async () => {
  const root = path.join(work, 'bad');
  await makeImageFolder(root, { sailboat: 6, kayak: 6 });
  fs.writeFileSync(path.join(root, 'kayak', 'text.jpg'), 'this is text, not a JPEG');
  const good = fs.readFileSync(path.join(root, 'kayak', 'kayak_000.jpg'));
  fs.writeFileSync(path.join(root, 'sailboat', 'truncated.jpg'), good.subarray(0, 40));
  fs.writeFileSync(path.join(root, 'sailboat', 'notes.txt'), 'hello');
  const result = await findDataIssues({ data: root, cacheDir, folds: 2, epochs: 2 });
  assert.equal(result.report.images, 12);
  const skipped = result.report.skipped.map((s) => path.basename(s.path)).sort();
  assert.deepEqual(skipped, ['notes.txt', 'text.jpg', 'truncated.jpg']);
  for (const s of result.report.skipped) assert.doesNotMatch(s.reason, /\n/);
});

test('the CLI: --json has the stable shape, --out writes the review files, a starter exclude file works with boat data split', async () => {
  assert.ok(labelRun, 'needs the planted label errors run');
  const { root, planted } = labelRun;
  const out = path.join(work, 'issues-out');
  const before = hashTree(root);
  const r = runCli(['data', 'issues', '--data', root, '--cache', cacheDir, '--seed', '1', '--json', '--out', out]);
  assert.equal(r.status, 0, r.stderr);
  const report = JSON.parse(r.stdout);
  assert.deepEqual(Object.keys(report).slice(0, 5), ['label_issues', 'near_duplicates', 'folds', 'images', 'seconds']);
  assert.deepEqual(Object.keys(report.label_issues[0]).slice(0, 5), ['path', 'given', 'suggested', 'score', 'rank']);
  assert.deepEqual(
    report.label_issues,
    labelRun.result.report.label_issues,
    'the CLI and the library agree (same seed)',
  );
  for (const name of [
    'issues.csv',
    'duplicates.csv',
    'label-issues.png',
    'duplicates.png',
    'exclude.csv',
    'relabel.csv',
    'report.json',
  ])
    assert.ok(fs.existsSync(path.join(out, name)), name);
  for (const png of ['label-issues.png', 'duplicates.png'])
    assert.equal((await sharp(path.join(out, png)).metadata()).format, 'png');
  const csvLines = fs.readFileSync(path.join(out, 'issues.csv'), 'utf8').trim().split('\n');
  assert.equal(csvLines[0], 'rank,path,subset,given,suggested,score');
  assert.equal(csvLines.length, report.label_issues.length + 1);
  // The starter exclude file, as written, builds a split without those photos.
  const split = await splitDataset({
    data: root,
    out: path.join(work, 'split-from-issues'),
    seed: 38,
    exclude: path.join(out, 'exclude.csv'),
  });
  const inSplit = new Set(
    split.rows.map((row) => path.relative(root, path.resolve(split.out, row.path)).split(path.sep).join('/')),
  );
  for (const i of report.label_issues) assert.ok(!inSplit.has(i.path), i.path);
  assert.ok([...planted.keys()].filter((p) => !inSplit.has(p)).length >= 0.8 * planted.size);
  assert.deepEqual(hashTree(root), before, 'the photos are untouched');
  // A folder it did not make is refused.
  const foreign = path.join(work, 'foreign');
  fs.mkdirSync(foreign);
  fs.writeFileSync(path.join(foreign, 'mine.txt'), 'x');
  const refused = runCli(['data', 'issues', '--data', root, '--cache', cacheDir, '--out', foreign]);
  assert.equal(refused.status, 2);
  assert.match(refused.stderr.trim(), /^boat: error: output folder .* was not made by boat/);
  assert.equal(fs.readFileSync(path.join(foreign, 'mine.txt'), 'utf8'), 'x');
});

test('issues: a missing data folder and a bad --folds are one-line errors, before any work', () => {
  for (const [args, pattern] of [
    [['--data', path.join(work, 'nope')], /data folder not found/],
    [['--data', demo, '--folds', '1'], /--folds must be an integer of at least 2, got 1/],
    [['--data', demo, '--folds', 'five'], /option '--folds <k>' argument 'five' is invalid/],
  ] as const) {
    const r = runCli(['data', 'issues', ...args]);
    assert.equal(r.status, 2, r.stderr);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr.trim(), pattern);
  }
});

test('split --exclude and --relabel: the split changes as stated, every other photo keeps its subset, no photo is touched', async () => {
  const dir = tempDir();
  const data = path.join(dir, 'boats');
  await makeImageFolder(data, { sailboat: 15, kayak: 10, gondola: 10 });
  const before = hashTree(data);
  const plain = await splitDataset({ data, out: path.join(dir, 'plain'), seed: 38 });
  fs.writeFileSync(
    path.join(dir, 'exclude.csv'),
    'path,reason\nsailboat/sailboat_003.jpg,looks like a kayak\n"kayak/kayak_001.jpg",dup\n\n',
  );
  fs.writeFileSync(
    path.join(dir, 'relabel.csv'),
    `path,new_class\ngondola/gondola_002.jpg,kayak\n${path.join(data, 'sailboat', 'sailboat_004.jpg')},gondola\n`,
  );
  const edited = await splitDataset({
    data,
    out: path.join(dir, 'edited'),
    seed: 38,
    exclude: path.join(dir, 'exclude.csv'),
    relabel: path.join(dir, 'relabel.csv'),
  });
  assert.deepEqual(edited.excluded.sort(), ['kayak/kayak_001.jpg', 'sailboat/sailboat_003.jpg']);
  assert.deepEqual(edited.relabelled.map((r) => [r.path, r.from, r.to]).sort(), [
    ['gondola/gondola_002.jpg', 'gondola', 'kayak'],
    ['sailboat/sailboat_004.jpg', 'sailboat', 'gondola'],
  ]);
  const key = (p: string): string => path.basename(p);
  const plainRows = new Map(plain.rows.map((r) => [key(r.path), r]));
  const editedRows = new Map(edited.rows.map((r) => [key(r.path), r]));
  assert.equal(editedRows.size, plainRows.size - 2);
  assert.ok(!editedRows.has('sailboat_003.jpg') && !editedRows.has('kayak_001.jpg'));
  for (const [name, row] of editedRows) {
    assert.equal(row.subset, plainRows.get(name)!.subset, `${name} keeps its subset`);
    const expected =
      name === 'gondola_002.jpg' ? 'kayak' : name === 'sailboat_004.jpg' ? 'gondola' : plainRows.get(name)!.class;
    assert.equal(row.class, expected, name);
    assert.ok(
      fs.existsSync(path.join(dir, 'edited', row.subset, row.class, name)),
      `${name} materialised under ${row.class}`,
    );
  }
  // split.csv records what was done; readers of the split see only the photos in it.
  const csv = fs.readFileSync(edited.csv, 'utf8');
  assert.match(csv.split('\n')[0], /^path,class,subset,note$/);
  assert.match(csv, /boats\/sailboat\/sailboat_003\.jpg,sailboat,excluded,excluded by exclude\.csv/);
  assert.match(csv, /boats\/gondola\/gondola_002\.jpg,kayak,(train|val|test),relabelled from gondola/);
  assert.equal(readSplitCsv(edited.csv).length, editedRows.size);
  assert.deepEqual(hashTree(data), before, 'no photo moved, edited or deleted');
  // Without the files the split is byte for byte the old one (no note column).
  assert.equal(fs.readFileSync(plain.csv, 'utf8').split('\n')[0], 'path,class,subset');
});

test('split --exclude / --relabel: a row naming a file not in the data, or a class not in the split, is a one-line error', async () => {
  const dir = tempDir();
  const data = path.join(dir, 'boats');
  await makeImageFolder(data, { sailboat: 6, kayak: 6 });
  const before = hashTree(data);
  fs.writeFileSync(path.join(dir, 'missing.csv'), 'path\nsailboat/sailboat_001.jpg\nsailboat/no_such_photo.jpg\n');
  fs.writeFileSync(path.join(dir, 'badclass.csv'), 'path,new_class\nkayak/kayak_000.jpg,submarine\n');
  fs.writeFileSync(path.join(dir, 'nocolumn.csv'), 'file\nkayak/kayak_000.jpg\n');
  await assert.rejects(
    splitDataset({ data, out: path.join(dir, 'a'), exclude: path.join(dir, 'missing.csv') }),
    (err: Error) =>
      err instanceof UserError &&
      /missing\.csv line 3: "sailboat\/no_such_photo\.jpg" is not a photo in/.test(err.message),
  );
  for (const [flag, file, pattern] of [
    ['--exclude', 'missing.csv', /line 3: "sailboat\/no_such_photo\.jpg" is not a photo in/],
    ['--relabel', 'missing.csv', /no "new_class" column/],
    ['--relabel', 'badclass.csv', /line 2: "submarine" is not one of the split's classes \(kayak, sailboat\)/],
    ['--exclude', 'nocolumn.csv', /no "path" column/],
    ['--exclude', 'nope.csv', /exclude file not found/],
  ] as const) {
    const r = runCli(['data', 'split', '--data', data, '--out', path.join(dir, 'cli'), flag, path.join(dir, file)]);
    assert.equal(r.status, 2, r.stderr);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0], /^boat: error: /);
    assert.match(lines[0], pattern);
  }
  assert.ok(!fs.existsSync(path.join(dir, 'cli', 'train')), 'nothing was written');
  assert.deepEqual(hashTree(data), before);
});
