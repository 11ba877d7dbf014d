/**
 * Outputs that never overwrite or stray: predict/explain names that keep photos with one base name
 * apart, the main job's --out ownership rule, --data that is never filled unless it is the default, and
 * split folders that keep a user's files and can be copies instead of hard links.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import sharp from 'sharp';

import { splitDataset } from '../lib/data';
import { createBoatModel, saveBoatModel } from '../lib/model';
import { selectBackend } from '../lib/engine';
import { claimOutputDirectory, distinctOutputNames, OWNED_MARKER, readOwnedMarker } from '../lib/util';
import { hashTree, makeImageFolder, runCli, tempDir, writeImage } from './helpers';

test('distinctOutputNames keeps the path below the common folder, and disambiguates what still collides', () => {
  const d = path.resolve('/photos');
  assert.deepEqual(distinctOutputNames([path.join(d, 'kayak', '1.jpg'), path.join(d, 'sailboat', '1.jpg')], '.p.png'), [
    path.join('kayak', '1.p.png'),
    path.join('sailboat', '1.p.png'),
  ]);
  assert.deepEqual(distinctOutputNames([path.join(d, 'kayak', '1.jpg')], '.p.png'), ['1.p.png']);
  // Same stem, other extension; a name that already ends like the first's; the same file twice.
  const names = distinctOutputNames(
    [path.join(d, '1.jpg'), path.join(d, '1.png'), path.join(d, '1.JPG'), path.join(d, '1.jpg')],
    '.p.png',
  );
  assert.deepEqual(names, ['1.p.png', '1.png.p.png', '1.JPG.p.png', '1.p.png']);
  const many = distinctOutputNames(
    ['a.jpg', 'a.png', 'a.webp', 'A.jpeg', 'a.PNG'].map((n) => path.join(d, n)),
    '.p.png',
  );
  assert.equal(new Set(many.map((n) => n.toLowerCase())).size, 5, many.join(' '));
});

test('predict --png and explain: two 1.jpg from different class folders give two outputs, none overwritten', async () => {
  const work = tempDir();
  await selectBackend();
  const model = await createBoatModel({ classes: ['kayak', 'sailboat'], mode: 'feature-extractor', seed: 1 });
  const modelDir = path.join(work, 'model');
  await saveBoatModel(model, modelDir);
  model.dispose();
  const photos = [path.join(work, 'photos', 'kayak', '1.jpg'), path.join(work, 'photos', 'sailboat', '1.jpg')];
  await writeImage(photos[0], 1, { width: 96, height: 64 });
  await writeImage(photos[1], 2, { width: 64, height: 96 });

  const png = path.join(work, 'png');
  const r = runCli(['predict', '--model', modelDir, '--json', '--png', png, ...photos]);
  assert.equal(r.status, 0, r.stderr);
  const results = JSON.parse(r.stdout) as Array<{ file: string; png?: string }>;
  assert.deepEqual(
    results.map((p) => p.png),
    [path.join(png, 'kayak', '1.prediction.png'), path.join(png, 'sailboat', '1.prediction.png')],
  );
  // Each drawing is of its own photo: the photos' shapes differ.
  const sizes = await Promise.all(
    results.map(async (p) => (await sharp(p.png).metadata()).width > (await sharp(p.png).metadata()).height),
  );
  assert.deepEqual(sizes, [true, false]);

  const out = path.join(work, 'explain');
  const e = runCli(['explain', '--model', modelDir, '--out', out, ...photos]);
  assert.equal(e.status, 0, e.stderr);
  const heatmaps = ['kayak', 'sailboat'].map((c) => path.join(out, c, '1.gradcam.png'));
  for (const h of heatmaps) assert.ok(fs.existsSync(h), `${h}\n${e.stdout}`);
  assert.notEqual(fs.readFileSync(heatmaps[0]).toString('hex'), fs.readFileSync(heatmaps[1]).toString('hex'));
});

test('boat main --out: a folder it did not make is a one-line error, and nothing in it changes', async () => {
  const cwd = tempDir();
  const out = path.join(cwd, 'mine');
  fs.mkdirSync(path.join(out, 'notebooks-data'), { recursive: true });
  fs.writeFileSync(path.join(out, 'summary.json'), 'my notes\n');
  fs.writeFileSync(path.join(out, 'notebooks-data', 'boats'), 'my file\n');
  const before = hashTree(out);
  const r = runCli(['main', '--out', out, '--demo-per-class', '2', '--epochs', '1'], cwd);
  assert.equal(r.status, 2, r.stdout);
  assert.match(
    r.stderr,
    /^boat: error: --out .*mine exists and was not made by boat; choose another --out or empty it yourself\n$/,
  );
  assert.deepEqual(hashTree(out), before);
  assert.ok(!fs.existsSync(path.join(cwd, 'data')), 'no demo set was made before the check');
  // A file, and a folder boat made for something else (a model), are refused too.
  fs.writeFileSync(path.join(cwd, 'file'), 'x');
  assert.match(runCli(['main', '--out', 'file'], cwd).stderr, /^boat: error: --out file exists and is not a folder\n$/);
  fs.mkdirSync(path.join(cwd, 'model'));
  fs.writeFileSync(path.join(cwd, 'model', OWNED_MARKER), JSON.stringify({ kind: 'boat-model', writtenBy: 'boat' }));
  assert.match(
    runCli(['main', '--out', 'model'], cwd).stderr,
    /^boat: error: --out model is a folder boat made for something else \(boat-model\); choose another --out\n$/,
  );
});

test('claimOutputDirectory: a new or empty folder gets the marker and is reusable; a marked one is reused', () => {
  const dir = tempDir();
  claimOutputDirectory(path.join(dir, 'new', 'run'), 'main-run');
  assert.equal(readOwnedMarker(path.join(dir, 'new', 'run'))?.kind, 'main-run');
  fs.mkdirSync(path.join(dir, 'empty'));
  claimOutputDirectory(path.join(dir, 'empty'), 'main-run');
  fs.writeFileSync(path.join(dir, 'empty', 'index.csv'), 'a\n');
  claimOutputDirectory(path.join(dir, 'empty'), 'main-run');
  assert.equal(fs.readFileSync(path.join(dir, 'empty', 'index.csv'), 'utf8'), 'a\n');
});

test('boat main --data DIR that does not exist is a one-line error; no demo set is written there', () => {
  const cwd = tempDir();
  const r = runCli(['main', '--data', 'typo', '--out', 'runs'], cwd);
  assert.equal(r.status, 2, r.stdout);
  assert.match(r.stderr, /^boat: error: data folder not found: typo\n$/);
  assert.ok(!fs.existsSync(path.join(cwd, 'typo')));
  assert.ok(!fs.existsSync(path.join(cwd, 'runs')), 'the check comes before --out is made');
});

test('the demo set is made only in the default data/boats, and the log says so', async () => {
  const { ensureDataset } = await import('../lib/data');
  const cwd = tempDir();
  // Explicit and empty: used as given (the scan then says it has no images), never filled.
  fs.mkdirSync(path.join(cwd, 'empty'));
  const explicit = await ensureDataset(path.join(cwd, 'empty'), 2, 0, { makeDemo: false });
  assert.deepEqual([explicit.made, fs.readdirSync(path.join(cwd, 'empty'))], [false, []]);
  await assert.rejects(
    ensureDataset(path.join(cwd, 'missing'), 2, 0, { makeDemo: false }),
    /^UserError: data folder not found: .*missing$/,
  );
  const made = await ensureDataset(path.join(cwd, 'data', 'boats'), 2);
  assert.equal(made.made, true);
  assert.equal(readOwnedMarker(made.dir)?.kind, 'demo-dataset');
});

test('re-running a split refuses, naming them, when the user put files into train/val/test; none is deleted', async () => {
  const dir = tempDir();
  await makeImageFolder(path.join(dir, 'boats'), { sailboat: 10, kayak: 6 });
  await splitDataset({ data: path.join(dir, 'boats'), out: dir, seed: 1 });
  await writeImage(path.join(dir, 'train', 'kayak', 'my_extra.jpg'), 50);
  fs.writeFileSync(path.join(dir, 'val', 'notes.txt'), 'mine\n');
  const before = hashTree(dir);
  const r = runCli(['data', 'split', '--data', path.join(dir, 'boats'), '--out', dir, '--seed', '2']);
  assert.equal(r.status, 2, r.stdout);
  assert.match(
    r.stderr,
    /^boat: error: the split folders hold 2 files the split did not put there, which re-running it would delete: .*train\/kayak\/my_extra\.jpg, .*val\/notes\.txt; move them out first\n$/,
  );
  assert.deepEqual(hashTree(dir), before);
  // Once they are moved out, the split runs again.
  fs.rmSync(path.join(dir, 'train', 'kayak', 'my_extra.jpg'));
  fs.rmSync(path.join(dir, 'val', 'notes.txt'));
  assert.equal(runCli(['data', 'split', '--data', path.join(dir, 'boats'), '--out', dir, '--seed', '2']).status, 0);
});

test('a split folder from before markers listed their files is judged by name', async () => {
  const dir = tempDir();
  await makeImageFolder(path.join(dir, 'boats'), { sailboat: 5, kayak: 5 });
  await splitDataset({ data: path.join(dir, 'boats'), out: dir, seed: 1 });
  const marker = path.join(dir, 'train', OWNED_MARKER);
  const { files: _files, ...legacy } = JSON.parse(fs.readFileSync(marker, 'utf8')) as Record<string, unknown>;
  fs.writeFileSync(marker, JSON.stringify(legacy));
  await splitDataset({ data: path.join(dir, 'boats'), out: dir, seed: 2 }); // only names it made: fine
  fs.writeFileSync(marker, JSON.stringify(legacy));
  await writeImage(path.join(dir, 'train', 'sailboat', 'mine.jpg'), 9);
  await assert.rejects(
    splitDataset({ data: path.join(dir, 'boats'), out: dir, seed: 3 }),
    /1 file the split did not put there.*train\/sailboat\/mine\.jpg/,
  );
});

test('the split says its folders are hard links; --copy makes copies, so an edit in train/ leaves the original alone', async () => {
  const dir = tempDir();
  await makeImageFolder(path.join(dir, 'boats'), { sailboat: 5, kayak: 5 });
  const linked = runCli(['data', 'split', '--data', path.join(dir, 'boats'), '--out', path.join(dir, 'linked')]);
  assert.equal(linked.status, 0, linked.stderr);
  assert.match(linked.stdout, /\(10 hard links, 0 copies\)/);
  assert.match(
    linked.stdout,
    /Note: hard links are the original files, so editing a photo in train\/val\/test edits it in the data folder too; --copy makes independent copies/,
  );

  const copied = runCli([
    'data',
    'split',
    '--data',
    path.join(dir, 'boats'),
    '--out',
    path.join(dir, 'copied'),
    '--copy',
  ]);
  assert.equal(copied.status, 0, copied.stderr);
  assert.match(copied.stdout, /\(0 hard links, 10 copies\)/);
  assert.doesNotMatch(copied.stdout, /Note: hard links/);
  const originals = hashTree(path.join(dir, 'boats'));
  const train = path.join(dir, 'copied', 'train', 'kayak');
  const photo = fs.readdirSync(train)[0];
  assert.notEqual(fs.statSync(path.join(train, photo)).ino, fs.statSync(path.join(dir, 'boats', 'kayak', photo)).ino);
  fs.appendFileSync(path.join(train, photo), 'edited');
  assert.deepEqual(hashTree(path.join(dir, 'boats')), originals);
});
