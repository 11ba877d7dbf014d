import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import * as yazl from 'yazl';

import { prepareDataset } from '../lib/data';
import { hashTree, tempDir, writeImage } from './helpers';

/** Reproduces the Kaggle download: 3 classes (one with a space) at the top level and again under boats/. */
async function kaggleLayout(root: string): Promise<void> {
  const classes: Record<string, number> = { 'cruise ship': 3, sailboat: 4, 'ferry boat': 2 };
  let seed = 0;
  for (const [name, n] of Object.entries(classes)) {
    for (let i = 0; i < n; i++) {
      await writeImage(path.join(root, name, `img ${i}.jpg`), seed);
      await writeImage(path.join(root, 'boats', name, `img ${i}.jpg`), seed);
      seed++;
    }
  }
  fs.writeFileSync(path.join(root, 'boats', 'sailboat', 'notes.txt'), 'not an image');
}

function zipFolder(root: string, zipFile: string): Promise<void> {
  const zip = new yazl.ZipFile();
  const visit = (dir: string): void => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) visit(full);
      else zip.addFile(full, path.relative(root, full).split(path.sep).join('/'));
    }
  };
  visit(root);
  zip.end();
  return new Promise((resolve, reject) => {
    zip.outputStream.pipe(fs.createWriteStream(zipFile)).on('close', resolve).on('error', reject);
  });
}

function assertPrepared(out: string): void {
  const classes = fs
    .readdirSync(out)
    .filter((n) => !n.startsWith('.'))
    .sort();
  assert.deepEqual(classes, ['cruise_ship', 'ferry_boat', 'sailboat']);
  assert.equal(fs.readdirSync(path.join(out, 'cruise_ship')).length, 3);
  assert.equal(fs.readdirSync(path.join(out, 'sailboat')).length, 4);
  assert.equal(fs.readdirSync(path.join(out, 'ferry_boat')).length, 2);
}

test('prepare ingests the Kaggle folder layout: one copy per class, underscores, source untouched', async () => {
  const dir = tempDir();
  const source = path.join(dir, 'kaggle');
  await kaggleLayout(source);
  const before = hashTree(source);
  const report = await prepareDataset({ source, out: path.join(dir, 'boats') });
  assertPrepared(path.join(dir, 'boats'));
  assert.equal(report.images, 9);
  assert.deepEqual(
    report.classes.map((c) => c.from),
    ['boats/cruise ship', 'boats/ferry boat', 'boats/sailboat'],
  );
  assert.ok(report.skipped.some((s) => s.path.endsWith('notes.txt') && /not an image/.test(s.reason)));
  assert.equal(report.skipped.filter((s) => /second copy/.test(s.reason)).length, 3);
  assert.deepEqual(hashTree(source), before);
});

test('prepare reads the Kaggle zip directly', async () => {
  const dir = tempDir();
  await kaggleLayout(path.join(dir, 'unpacked'));
  const zipFile = path.join(dir, 'boat-types-recognition.zip');
  await zipFolder(path.join(dir, 'unpacked'), zipFile);
  const zipHash = hashTree(dir)['boat-types-recognition.zip'];
  const report = await prepareDataset({ source: zipFile, out: path.join(dir, 'boats') });
  assertPrepared(path.join(dir, 'boats'));
  assert.equal(report.images, 9);
  assert.equal(hashTree(dir)['boat-types-recognition.zip'], zipHash);
  // Same bytes as the originals.
  assert.deepEqual(
    fs.readFileSync(path.join(dir, 'boats', 'sailboat', 'img 2.jpg')),
    fs.readFileSync(path.join(dir, 'unpacked', 'boats', 'sailboat', 'img 2.jpg')),
  );
});

test('prepare rejects a missing source, a non-zip file and a corrupt zip with one-line errors', async () => {
  const dir = tempDir();
  await assert.rejects(
    prepareDataset({ source: path.join(dir, 'nope'), out: path.join(dir, 'o') }),
    /^UserError: source not found/,
  );
  fs.writeFileSync(path.join(dir, 'a.txt'), 'x');
  await assert.rejects(
    prepareDataset({ source: path.join(dir, 'a.txt'), out: path.join(dir, 'o') }),
    /must be the Kaggle .zip/,
  );
  fs.writeFileSync(path.join(dir, 'bad.zip'), 'not a zip at all');
  await assert.rejects(
    prepareDataset({ source: path.join(dir, 'bad.zip'), out: path.join(dir, 'o') }),
    /cannot read zip/,
  );
  assert.equal(fs.existsSync(path.join(dir, 'o')), false);
});
