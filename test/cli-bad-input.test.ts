import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';

import { scanImageFolder } from '../lib/data';
import { hashTree, makeImageFolder, runCli, SHARED_PHOTOS, tempDir } from './helpers';

function assertOneLineError(r: { status: number; stdout: string; stderr: string }, pattern: RegExp): void {
  assert.notEqual(r.status, 0);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `one line expected, got:\n${r.stderr}`);
  assert.match(lines[0], /^boat: error: /);
  assert.match(lines[0], pattern);
  assert.doesNotMatch(r.stderr, /\n\s+at /);
}

test('a missing data folder is a one-line error for split, audit and index', () => {
  const missing = path.join(tempDir(), 'nope');
  for (const cmd of [
    ['data', 'split', '--data', missing, '--out', tempDir()],
    ['data', 'audit', '--data', missing],
    ['data', 'index', '--data', missing],
  ]) {
    assertOneLineError(runCli(cmd), /data folder not found/);
  }
});

test('bad flags and unknown commands are one-line errors', () => {
  assertOneLineError(
    runCli(['data', 'split', '--top', 'five']),
    /option '--top <n>' argument 'five' is invalid\. Expected an integer of at least 1\.$/,
  );
  assertOneLineError(runCli(['data', 'demo', '--bogus']), /unknown option '--bogus'$/);
  assertOneLineError(runCli(['fly']), /unknown command 'fly'$/);
  assertOneLineError(runCli(['data', 'fly']), /unknown command 'fly'$/);
  assertOneLineError(
    runCli(['train', '--mode', 'sideways', '--out', 'x']),
    /option '--mode <mode>' argument 'sideways' is invalid\. Allowed choices are finetune, feature-extractor\.$/,
  );
});

test('odd folder contents are reported skips, and no user file is touched', async () => {
  const dir = tempDir();
  const data = path.join(dir, 'boats');
  await makeImageFolder(data, { sailboat: 5, kayak: 5 });
  fs.mkdirSync(path.join(data, 'empty_class'));
  fs.writeFileSync(path.join(data, 'gondola'), 'a class "folder" that is a file');
  fs.writeFileSync(path.join(data, 'kayak', 'readme.txt'), 'hello');
  fs.writeFileSync(path.join(data, 'kayak', 'zero.jpg'), '');
  fs.symlinkSync('..', path.join(data, 'kayak', 'loop'));
  const good = fs.readFileSync(path.join(data, 'sailboat', 'sailboat_000.jpg'));
  fs.writeFileSync(path.join(data, 'sailboat', 'cut.jpg'), good.subarray(0, 200));
  const before = hashTree(data);

  const scanned = scanImageFolder(data);
  assert.deepEqual(scanned.classes, ['kayak', 'sailboat']);
  const reasons = Object.fromEntries(scanned.skipped.map((s) => [path.relative(data, s.path), s.reason]));
  assert.match(reasons['empty_class'], /empty class folder/);
  assert.match(reasons['gondola'], /not a class folder/);
  assert.match(reasons['kayak/readme.txt'], /not an image/);
  assert.match(reasons['kayak/zero.jpg'], /empty file/);
  assert.match(reasons['kayak/loop'], /link loop/);

  const audit = runCli(['data', 'audit', '--data', data, '--json']);
  assert.equal(audit.status, 0, audit.stderr);
  const report = JSON.parse(audit.stdout) as { unreadable: Array<{ path: string }>; skipped: unknown[] };
  assert.deepEqual(
    report.unreadable.map((u) => path.basename(u.path)),
    ['cut.jpg'],
  );
  assert.equal(report.skipped.length, 5);

  const split = runCli(['data', 'split', '--data', data, '--out', path.join(dir, 'split')]);
  assert.equal(split.status, 0, split.stderr);
  assert.match(split.stdout, /Skipped 5 entries/);
  assert.equal(split.stderr, '');
  assert.deepEqual(hashTree(data), before);
});

test('a data folder with no images at all is a clear error', () => {
  const dir = tempDir();
  fs.mkdirSync(path.join(dir, 'a'));
  assertOneLineError(runCli(['data', 'split', '--data', dir, '--out', tempDir()]), /no images found/);
});

test('demo, split and audit run end to end through the CLI', () => {
  const dir = tempDir();
  const demo = runCli(['data', 'demo', '--out', path.join(dir, 'boats'), '--per-class', '5', '--seed', '3']);
  assert.equal(demo.status, 0, demo.stderr);
  assert.match(demo.stdout, /SYNTHETIC/);
  const split = runCli([
    'data',
    'split',
    '--data',
    path.join(dir, 'boats'),
    '--out',
    dir,
    '--top',
    '5',
    '--seed',
    '38',
  ]);
  assert.equal(split.status, 0, split.stderr);
  assert.match(split.stdout, /sailboat\s+3\s+1\s+1/);
  const audit = runCli(['data', 'audit', '--data', path.join(dir, 'boats'), '--split', path.join(dir, 'split.csv')]);
  assert.equal(audit.status, 0, audit.stderr);
  assert.match(audit.stdout, /Audited 25 readable images/);
  assert.match(audit.stdout, /Leakage .*: 0 group/);
});

test(
  'the real photos split 60/20/20 over the top 5 classes',
  { skip: !fs.existsSync(SHARED_PHOTOS) && 'no ../shared/data/boat-types on this machine' },
  () => {
    const out = tempDir();
    const r = runCli(['data', 'split', '--data', SHARED_PHOTOS, '--out', out, '--top', '5', '--seed', '38']);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /sailboat\s+233\s+78\s+78/);
    assert.match(
      r.stdout,
      /Dropped \(outside --top\): buoy \(53\), paper_boat \(31\), freight_boat \(23\), inflatable_boat \(16\)/,
    );
  },
);
