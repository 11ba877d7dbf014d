/**
 * Inputs that must be reported skips, never crashes: decompression bombs (a JPEG and a PNG whose
 * headers claim 60,000 × 60,000) on the JPEG addon's path and on sharp's, file names that are not
 * UTF-8, and the CI rule that a missing part CI installs is a failure, not a skip.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { test } from 'node:test';
import sharp from 'sharp';

import { prepareDataset } from '../lib/data';
import { scanImageFolder } from '../lib/data/scan';
import {
  evalTransforms,
  ImageDecodeError,
  ImageFolder,
  jpegAddonActive,
  MAX_IMAGE_PIXELS,
  openImage,
  pixelLimitProblem,
  setJpegAddon,
} from '../lib/images';
import { Random } from '../lib/util';
import { jpegAddonSkip, REPO_ROOT, tempDir } from './helpers';

const addon = jpegAddonActive();
const ADDON_FILE = path.join(REPO_ROOT, 'native', 'build', 'boat_jpeg.node');

/** A valid baseline JPEG (16 × 16, from libjpeg via sharp) whose SOF0 is rewritten to claim width × height. */
async function jpegClaiming(width: number, height: number): Promise<Buffer> {
  const b = Buffer.from(
    await sharp({ create: { width: 16, height: 16, channels: 3, background: { r: 20, g: 110, b: 190 } } })
      .jpeg({ quality: 90 })
      .toBuffer(),
  );
  for (let at = 2; at + 4 <= b.length; at += 2 + b.readUInt16BE(at + 2)) {
    assert.equal(b[at], 0xff);
    if (b[at + 1] === 0xc0) {
      b.writeUInt16BE(height, at + 5);
      b.writeUInt16BE(width, at + 7);
      return b;
    }
  }
  throw new Error('no SOF0 marker');
}

/** A PNG: signature, an IHDR claiming width × height (8-bit RGB) with a valid CRC, a small IDAT, IEND. */
function pngClaiming(width: number, height: number): Buffer {
  const chunk = (type: string, body: Buffer): Buffer => {
    const head = Buffer.alloc(4);
    head.writeUInt32BE(body.length);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(zlib.crc32(Buffer.concat([Buffer.from(type, 'latin1'), body])));
    return Buffer.concat([head, Buffer.from(type, 'latin1'), body, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([8, 2, 0, 0, 0], 8);
  const row = Buffer.alloc(1 + 3 * 16); // a few rows' worth of data: far too little, as a bomb's would be
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', zlib.deflateSync(row)),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

const BOMB_REASON =
  /^too large to decode: 60000×60000 is 3,600,000,000 pixels, over the limit of 268,402,689 \(16383×16383, sharp's default\)$/;

test("the pixel limit is sharp's default, 0x3FFF²", () => {
  assert.equal(MAX_IMAGE_PIXELS, 268_402_689);
  assert.equal(pixelLimitProblem(16383, 16383), null);
  assert.match(pixelLimitProblem(16384, 16383)!, /over the limit/);
});

test('the JPEG addon checks the same limit', { skip: jpegAddonSkip(addon) }, () => {
  assert.equal((require(ADDON_FILE) as { maxPixels: number }).maxPixels, MAX_IMAGE_PIXELS);
});

test('a JPEG or PNG header claiming 60,000 × 60,000 is a reported skip before any decode, with the addon and without', async () => {
  const dir = tempDir();
  fs.mkdirSync(path.join(dir, 'kayak'));
  const jpeg = path.join(dir, 'kayak', 'bomb.jpg');
  const png = path.join(dir, 'kayak', 'bomb.png');
  fs.writeFileSync(jpeg, await jpegClaiming(60000, 60000));
  fs.writeFileSync(png, pngClaiming(60000, 60000));
  assert.deepEqual(
    await sharp(png, { limitInputPixels: false })
      .metadata()
      .then((m) => [m.format, m.width, m.height]),
    ['png', 60000, 60000],
  );
  await sharp({ create: { width: 32, height: 24, channels: 3, background: 'white' } })
    .jpeg()
    .toFile(path.join(dir, 'kayak', 'fine.jpg'));
  for (const on of addon ? [true, false] : [false]) {
    setJpegAddon(on);
    try {
      for (const file of [jpeg, png]) {
        await assert.rejects(
          openImage(file),
          (err: unknown) => err instanceof ImageDecodeError && BOMB_REASON.test(err.reason),
          `${file}, addon ${on}`,
        );
      }
      const ds = new ImageFolder(dir, evalTransforms());
      const loaded = await Promise.all(ds.samples.map((_, i) => ds.load(i, new Random(0))));
      assert.deepEqual(
        loaded.map((l) => (l ? path.basename(l.file) : null)),
        [null, null, 'fine.jpg'],
      );
      assert.deepEqual(
        // Loads run concurrently, so skips are recorded in the order they finish.
        ds.skipped.map((s) => [path.basename(s.path), BOMB_REASON.test(s.reason)]).sort(),
        [
          ['bomb.jpg', true],
          ['bomb.png', true],
        ],
      );
    } finally {
      setJpegAddon(addon);
    }
  }
});

test(
  'the addon itself rejects the bomb before allocating: no abort under a 4 GB address-space limit',
  { skip: jpegAddonSkip(addon) },
  async () => {
    const file = path.join(tempDir(), 'bomb.jpg');
    fs.writeFileSync(file, await jpegClaiming(60000, 60000));
    // Exact mode's geometry (no shrink) would need a 10.8 GB band: an allocation that, before the check, threw
    // std::bad_alloc on libuv's thread and aborted node.
    const script = `require(${JSON.stringify(ADDON_FILE)}).resizedCropJpeg(${JSON.stringify(file)}, Float64Array.from([0, 0, 60000, 60000, 0, 0, 60000, 60000, 224, 224]), 1)
    .then(() => console.log('decoded'), (e) => console.log('rejected: ' + e.message))`;
    const r = spawnSync('bash', ['-c', 'ulimit -v 4000000 && exec "$0" -e "$1"', process.execPath, script], {
      encoding: 'utf8',
    });
    assert.equal(r.status, 0, `${r.signal ?? ''} ${r.stderr}`);
    assert.equal(r.stdout.trim(), 'rejected: image too large: 60000x60000 is over the limit of 268402689 pixels');
  },
);

test('a file or class folder whose name is not UTF-8 is skipped with that reason; the rest is read', async () => {
  const dir = tempDir();
  const root = path.join(dir, 'boats');
  fs.mkdirSync(path.join(root, 'kayak'), { recursive: true });
  const photo = await sharp({ create: { width: 32, height: 24, channels: 3, background: 'white' } })
    .jpeg()
    .toBuffer();
  fs.writeFileSync(path.join(root, 'kayak', 'fine.jpg'), photo);
  const bytes = (...parts: Array<string | number[]>): Buffer =>
    Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p) : Buffer.from(p))));
  fs.writeFileSync(bytes(root, '/kayak/caf', [0xff], '.jpg'), photo);
  fs.mkdirSync(bytes(root, '/', [0xfe, 0x41]));
  fs.writeFileSync(bytes(root, '/', [0xfe, 0x41], '/x.jpg'), photo);
  // Other unreadable entries say what they are.
  fs.symlinkSync('nowhere.jpg', path.join(root, 'kayak', 'dangling.jpg'));
  fs.symlinkSync('self.jpg', path.join(root, 'kayak', 'self.jpg'));

  const scanned = scanImageFolder(root);
  assert.deepEqual(
    scanned.files.map((f) => f.relative),
    ['kayak/fine.jpg'],
  );
  const reasons = Object.fromEntries(scanned.skipped.map((s) => [path.relative(root, s.path), s.reason]));
  const notUtf8 =
    'file name is not valid UTF-8, and the decoders take paths as UTF-8 text; rename it (convmv converts names) to use it';
  assert.deepEqual(reasons, {
    '\\xfeA': notUtf8,
    'kayak/caf\\xff.jpg': notUtf8,
    'kayak/dangling.jpg': 'unreadable entry (broken link)',
    'kayak/self.jpg': 'unreadable entry (link loop)',
  });
  // boat data prepare over a folder reports it too, where it used to drop it without a word.
  const report = await prepareDataset({ source: root, out: path.join(dir, 'prepared') });
  assert.deepEqual(
    report.skipped.filter((r) => r.reason === notUtf8).map((r) => path.relative(root, r.path)),
    ['\\xfeA', 'kayak/caf\\xff.jpg'],
  );
  assert.equal(report.images, 1);
});

test('under CI=true a missing part is a failing test; elsewhere a skip with its reason', () => {
  const dir = tempDir();
  const file = path.join(dir, 'missing-part.test.js');
  fs.writeFileSync(
    file,
    `const { test } = require('node:test');
const { skipUnlessCi } = require(${JSON.stringify(path.join(REPO_ROOT, 'dist', 'test', 'helpers.js'))});
test('needs the part', { skip: skipUnlessCi('the part is not installed') }, () => {});\n`,
  );
  // Without NODE_TEST_CONTEXT, which would make the child report to this runner instead of printing.
  const { NODE_TEST_CONTEXT: _context, ...env } = process.env;
  const run = (ci: string): { status: number | null; stdout: string } =>
    spawnSync(process.execPath, ['--test', '--test-reporter=tap', file], { encoding: 'utf8', env: { ...env, CI: ci } });
  const here = run('');
  assert.equal(here.status, 0, here.stdout);
  assert.match(here.stdout, /# SKIP the part is not installed/);
  const ci = run('true');
  assert.equal(ci.status, 1, ci.stdout);
  assert.match(ci.stdout, /not ok \d+ - CI installs what these tests need: the part is not installed/);
});
