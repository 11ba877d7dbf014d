// boat export and boat serve refuse bad input in one line and never touch a folder they did not make.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { before, test } from 'node:test';

import { createBoatModel, saveBoatModel, selectBackend } from '../lib';
import { hashTree, REPO_ROOT, runCli, tempDir } from './helpers';

const work = tempDir('boat-export-cli-');
const model = path.join(work, 'models', 'tiny');
const photo = path.join(REPO_ROOT, 'test', 'fixtures', 'photos', 'chelsea.jpg');

function refused(args: string[], message: RegExp): void {
  const r = runCli(args);
  assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `one line, got: ${r.stderr}`);
  assert.match(lines[0], /^boat: error: /);
  assert.match(lines[0], message);
}

before(async () => {
  await selectBackend();
  const m = await createBoatModel({ classes: ['a', 'b', 'c'], mode: 'feature-extractor', inputSize: 32 });
  await saveBoatModel(m, model);
  m.dispose();
});

test('export refuses an unknown quantization, a missing model and a damaged one, and writes nothing', () => {
  const out = path.join(work, 'web', 'never');
  refused(
    ['export', '--model', model, '--out', out, '--quantize', 'int4'],
    /option '--quantize <kind>' argument 'int4' is invalid\. Allowed choices are none, float16, uint8/,
  );
  refused(['export', '--model', path.join(work, 'nope'), '--out', out], /model not found/);
  const damaged = path.join(work, 'models', 'damaged');
  fs.cpSync(model, damaged, { recursive: true });
  const weights = path.join(damaged, 'head', 'weights.bin');
  const bytes = fs.readFileSync(weights);
  bytes[10] ^= 0xff;
  fs.writeFileSync(weights, bytes);
  refused(['export', '--model', damaged, '--out', out], /damaged \(SHA-256 mismatch\).*head[/\\]weights\.bin/);
  fs.writeFileSync(path.join(damaged, 'metadata.json'), '{ not json');
  refused(['export', '--model', damaged, '--out', out], /model metadata damaged/);
  assert.equal(fs.existsSync(out), false);
});

test('export replaces only its own earlier export, and only with --force', () => {
  const out = path.join(work, 'web', 'tiny');
  const first = runCli(['export', '--model', model, '--out', out, '--quantize', 'float16']);
  assert.equal(first.status, 0, first.stderr);
  assert.match(first.stdout, /Exported .* \(3 classes, 32 px, float16 weights\)/);
  const manifest = JSON.parse(fs.readFileSync(path.join(out, 'boat.json'), 'utf8'));
  assert.equal(manifest.precision, 'float16');
  assert.deepEqual(manifest.options, { quantize: 'float16', shardBytes: 4 * 1024 * 1024 });
  assert.equal(manifest.source.metadataSha256.length, 64);
  for (const f of [
    'index.html',
    'boat-web.js',
    'model/model.json',
    'wasm/tfjs-backend-wasm.wasm',
    'wasm/tfjs-backend-wasm-simd.wasm',
  ])
    assert.ok(fs.existsSync(path.join(out, f)), f);

  refused(['export', '--model', model, '--out', out], /exists; add --force/);
  const again = runCli(['export', '--model', model, '--out', out, '--force']);
  assert.equal(again.status, 0, again.stderr);
  assert.equal(JSON.parse(fs.readFileSync(path.join(out, 'boat.json'), 'utf8')).precision, 'float32');

  // A user's folder, and a folder boat made for something else (a saved model): never replaced.
  const mine = path.join(work, 'mine');
  fs.mkdirSync(mine);
  fs.writeFileSync(path.join(mine, 'notes.txt'), 'keep me');
  for (const dir of [mine, path.join(work, 'models', 'other')]) {
    if (dir !== mine) fs.cpSync(model, dir, { recursive: true });
    const before = hashTree(dir);
    refused(['export', '--model', model, '--out', dir], /exists; add --force/);
    refused(['export', '--model', model, '--out', dir, '--force'], /not a folder made by boat export/);
    assert.deepEqual(hashTree(dir), before);
  }
  refused(['export', '--model', model, '--out', path.join(model, 'web')], /overlaps the model folder/);
  refused(['export', '--model', out, '--out', path.join(work, 'web', 'x')], /already an export/);
});

test('predict on an export refuses a damaged shard in one line; serve refuses a missing folder and a bad port', () => {
  const out = path.join(work, 'web', 'broken');
  assert.equal(runCli(['export', '--model', model, '--out', out]).status, 0);
  const ok = runCli(['predict', '--model', out, photo]);
  assert.equal(ok.status, 0, ok.stderr);
  assert.match(ok.stdout, /chelsea\.jpg: (a|b|c) \d+\.\d%/);
  const shardName = fs.readdirSync(path.join(out, 'model')).find((f) => f.startsWith('group1-shard1of'))!;
  const shard = path.join(out, 'model', shardName);
  const bytes = fs.readFileSync(shard);
  bytes[100] ^= 0xff;
  fs.writeFileSync(shard, bytes);
  refused(['predict', '--model', out, photo], /exported model file damaged \(SHA-256 mismatch\)/);
  refused(
    ['evaluate', '--model', out, '--data', work, '--input-size', '64', '--out', path.join(work, 'eval')],
    /--input-size does not apply to an exported folder/,
  );
  refused(['evaluate', '--model', out, '--data', work], /is an exported web folder; give --out/);
  refused(['serve', path.join(work, 'nope')], /folder to serve not found/);
  refused(
    ['serve', out, '--port', 'http'],
    /option '--port <n>' argument 'http' is invalid\. Expected a port from 0 to 65535/,
  );
  refused(['serve', out, '--port', '70000'], /argument '70000' is invalid\. Expected a port/);
  refused(['serve'], /missing required argument 'dir'/);
});
