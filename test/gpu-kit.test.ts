/**
 * The GPU kit (npm run gpu-kit -- DIR), end to end: made here, copied into an empty temp folder (no
 * repository, no node_modules above it), and run with an empty environment (env -i) on the SwiftShader
 * Vulkan driver with a small input. Making the kit takes about a minute and its run several minutes on
 * SwiftShader, so it runs under CI=true or BOAT_TEST_GPU_KIT=1 and is skipped, with that reason, otherwise.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';

import { hashTree, REPO_ROOT, tempDir } from './helpers';

const SWIFTSHADER_ICD = '/usr/lib/chromium/vk_swiftshader_icd.json';
const wanted = process.env.CI === 'true' || process.env.BOAT_TEST_GPU_KIT === '1';
const skip = wanted ? false : 'the GPU kit end to end takes minutes: set BOAT_TEST_GPU_KIT=1 (CI=true runs it)';

function makeKit(dir: string): { status: number; stdout: string; stderr: string; seconds: number } {
  const started = Date.now();
  const r = spawnSync(process.execPath, [path.join(REPO_ROOT, 'scripts', 'gpu-kit.js'), dir], {
    encoding: 'utf8',
    timeout: 10 * 60_000,
  });
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr, seconds: (Date.now() - started) / 1000 };
}

test('gpu-kit: an existing folder is refused in one line and left as it was', () => {
  const dir = tempDir();
  fs.writeFileSync(path.join(dir, 'mine.txt'), 'a user file');
  const before = hashTree(dir);
  const r = makeKit(dir);
  assert.equal(r.status, 2);
  assert.match(
    r.stderr,
    /^gpu-kit: error: .* exists; give a new folder \(the kit never writes into one it did not create\)\n$/,
  );
  assert.deepEqual(hashTree(dir), before);
  assert.deepEqual(
    fs.readdirSync(path.dirname(dir)).filter((f) => f.startsWith(`${path.basename(dir)}.partial-`)),
    [],
  );
});

test(
  'gpu-kit: made here (at most 60 MiB), it runs from an empty folder with an empty environment on SwiftShader and passes its correctness check',
  { skip, timeout: 25 * 60_000 },
  () => {
    assert.ok(
      fs.existsSync(SWIFTSHADER_ICD),
      `no SwiftShader Vulkan driver at ${SWIFTSHADER_ICD} (apt-get install chromium)`,
    );
    const made = path.join(tempDir(), 'kit');
    const build = makeKit(made);
    assert.equal(build.status, 0, build.stderr);
    const files = fs.readdirSync(made).sort();
    for (const f of [
      'check.js',
      'dawn.node.gz',
      'node.gz',
      'reference.json',
      'resnet50-topology.json',
      'run.sh',
      'tfjs-backend-wasm-simd.wasm',
      'wasm-out',
    ])
      assert.ok(files.includes(f), `${f} in ${files.join(', ')}`);
    assert.ok(
      files.some((f) => /^libvulkan1_.*\.deb$/.test(f)),
      'the Vulkan loader package',
    );
    const bytes = (fs.readdirSync(made, { recursive: true }) as string[]).reduce(
      (n, f) => n + fs.statSync(path.join(made, f)).size,
      0,
    );
    assert.ok(bytes <= 60 * 2 ** 20, `${(bytes / 2 ** 20).toFixed(1)} MiB`);

    // A fresh folder elsewhere, with nothing of the project's above it.
    const away = tempDir('boat-kit-run-');
    const kit = path.join(away, 'kit');
    fs.cpSync(made, kit, { recursive: true });
    for (let dir = away; dir !== path.dirname(dir); dir = path.dirname(dir))
      assert.ok(!fs.existsSync(path.join(dir, 'node_modules')), `${dir}/node_modules exists`);
    const started = Date.now();
    const r = spawnSync(
      '/usr/bin/env',
      [
        '-i',
        'PATH=/usr/bin:/bin',
        `TMPDIR=${away}`,
        `VK_ICD_FILENAMES=${SWIFTSHADER_ICD}`,
        'bash',
        'kit/run.sh',
        '--size',
        '32',
        '--batches',
        '2',
        '--reps',
        '1',
        '--cpu-batches',
        '2',
      ],
      { cwd: away, encoding: 'utf8', timeout: 20 * 60_000 },
    );
    const seconds = (Date.now() - started) / 1000;
    const out = r.stdout + r.stderr;
    console.log(
      `kit: ${(bytes / 2 ** 20).toFixed(1)} MiB, made in ${build.seconds.toFixed(0)} s, run (--size 32) in ${seconds.toFixed(0)} s\n${out}`,
    );
    assert.equal(r.status, 0, out);
    assert.match(out, /^Using webgpu backend \(WebGPU via Dawn: google swiftshader .*, software renderer\)$/m);
    assert.match(
      out,
      /^correctness: log-probabilities of a fixed 2×32px input vs the kit's reference \(Using wasm backend .*\): max \|diff\| \S+, top-1 same: PASS \(tolerance 1e-3\)$/m,
    );
    for (const engine of ['webgpu', 'cpu']) {
      assert.match(out, new RegExp(`^${engine}: forward, batch 2, 32 px: \\d+\\.\\d\\d img/s$`, 'm'));
      assert.match(out, new RegExp(`^${engine}: train step, batch 2, 32 px: \\d+\\.\\d\\d img/s; tensors \\d+$`, 'm'));
    }
    assert.match(out, /^CPU engine: Using wasm backend \(SIMD, \d+ threads?/m);
    assert.match(out, /^ratio webgpu batch 2 \/ cpu batch 2: forward \d+\.\d\d×, train step \d+\.\d\d×$/m);
    assert.doesNotMatch(out, /OffscreenCanvas|\n\s+at .*\.js:\d+/);
    assert.deepEqual(fs.readdirSync(away).sort(), ['kit'], 'run.sh left nothing in the temp folder');
  },
);
