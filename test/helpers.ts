import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test, type TestContext } from 'node:test';
import sharp from 'sharp';

// The tests' tolerances are fp32's, and the CLI runs they start inherit this: so they compute in fp32 whatever
// the default precision (auto: bf16 on a CPU with native bf16). bf16 has its own tests, which ask for it.
process.env.BOAT_PRECISION ??= 'fp32';

export const REPO_ROOT = path.resolve(__dirname, '..', '..');
export const SHARED_PHOTOS = path.resolve(REPO_ROOT, '..', 'shared', 'data', 'boat-types');

const tempDirs: string[] = [];
process.on('exit', () => {
  for (const dir of tempDirs) {
    try {
      fs.rmSync(dir, { recursive: true, force: true });
    } catch {
      // A test left a read-only folder behind: leave it to the OS's temp cleaning.
    }
  }
});

/** A fresh folder under the OS temp dir, removed when the test process exits. */
export function tempDir(prefix = 'boat-test-'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  tempDirs.push(dir);
  return dir;
}

/** A small solid-colour JPEG (or other format) with a seeded noise pattern so contents differ. */
export async function writeImage(
  file: string,
  seed: number,
  options: { width?: number; height?: number; format?: 'jpeg' | 'png' | 'webp' } = {},
): Promise<void> {
  const width = options.width ?? 48;
  const height = options.height ?? 32;
  const pixels = Buffer.alloc(width * height * 3);
  let s = seed * 7919 + 1;
  for (let i = 0; i < pixels.length; i++) {
    s = (s * 1103515245 + 12345) & 0x7fffffff;
    pixels[i] = s & 0xff;
  }
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const img = sharp(pixels, { raw: { width, height, channels: 3 } });
  const format = options.format ?? 'jpeg';
  await (format === 'png' ? img.png() : format === 'webp' ? img.webp() : img.jpeg()).toFile(file);
}

/** Creates root/<class>/<class>_<i>.jpg for each entry of `counts`. */
export async function makeImageFolder(root: string, counts: Record<string, number>, seedBase = 0): Promise<void> {
  let seed = seedBase;
  for (const [label, n] of Object.entries(counts)) {
    for (let i = 0; i < n; i++)
      await writeImage(path.join(root, label, `${label}_${String(i).padStart(3, '0')}.jpg`), seed++);
  }
}

/** SHA-256 of every file below `root`, keyed by relative path: to prove nothing was modified. */
export function hashTree(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  const visit = (dir: string): void => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) visit(full);
      else if (entry.isFile())
        out[path.relative(root, full)] = crypto.createHash('sha256').update(fs.readFileSync(full)).digest('hex');
    }
  };
  visit(root);
  return out;
}

/** Runs the CLI as a user would; returns its exit code and output. */
export function runCli(
  args: string[],
  cwd = REPO_ROOT,
  env: Record<string, string> = {},
): { status: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [path.join(REPO_ROOT, 'bin', 'boat.js'), ...args], {
    cwd,
    encoding: 'utf8',
    env: { ...process.env, BOAT_DEBUG: '', ...env },
  });
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** CI (CI=true) installs every optional part: the native addons, Chromium, Debian's Jupyter. */
export const IN_CI = process.env.CI === 'true';
const failedParts = new Set<string>();

/**
 * For a test's (or a describe's) `skip` option, when `missing` names a part CI installs (false when it
 * is here): a reported skip with that reason on a developer's machine, and under CI=true one failing
 * test naming it as well, so that a missing install step cannot pass as a skip.
 */
export function skipUnlessCi(missing: string | false): string | false {
  if (missing && IN_CI && !failedParts.has(missing)) {
    failedParts.add(missing);
    test(`CI installs what these tests need: ${missing}`, () =>
      assert.fail(`${missing} (CI=true, where it is installed: a failure, not a skip)`));
  }
  return missing;
}

/** The same inside a test body: skips the rest of the test with the reason (returns true), or fails under CI=true. */
export function skipRestUnlessCi(t: TestContext, missing: string | false): boolean {
  if (!missing) return false;
  if (IN_CI) assert.fail(`${missing} (CI=true, where it is installed: a failure, not a skip)`);
  t.skip(missing);
  return true;
}

/** The skip for tests of the JPEG addon: none when it is active, a plain one when turned off on purpose, else skipUnlessCi's. */
export function jpegAddonSkip(active: boolean): string | false {
  if (active) return false;
  if (process.env.BOAT_NATIVE === '0' || process.env.BOAT_NATIVE_JPEG === '0')
    return 'JPEG addon turned off (BOAT_NATIVE=0 or BOAT_NATIVE_JPEG=0)';
  return skipUnlessCi('JPEG addon not built (npm run build:native; needs libjpeg-dev)');
}
