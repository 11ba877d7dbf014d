import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { UserError } from './errors';
import { crashTestInSave, fullDiskTestInSave } from './test-hooks';

/** Write a file atomically: write a temp file beside it, then rename over the target. */
export function writeFileAtomic(file: string, data: string | Uint8Array): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = path.join(
    path.dirname(file),
    `.${path.basename(file)}.${process.pid}.${crypto.randomBytes(4).toString('hex')}.tmp`,
  );
  try {
    fs.writeFileSync(tmp, data);
    fs.renameSync(tmp, file);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw err;
  }
}

export function writeJsonAtomic(file: string, value: unknown): void {
  writeFileAtomic(file, JSON.stringify(value, null, 2) + '\n');
}

/** SHA-256 of bytes or a string (UTF-8), hex. */
export function sha256Hex(data: string | Uint8Array): string {
  return crypto.createHash('sha256').update(data).digest('hex');
}

/** SHA-256 of a file's bytes, hex. */
export async function sha256File(file: string): Promise<string> {
  const hash = crypto.createHash('sha256');
  for await (const chunk of fs.createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Fails with a one-line error unless `dir` is an existing folder. */
export function requireDirectory(dir: string, what: string): void {
  let stat: fs.Stats;
  try {
    stat = fs.statSync(dir);
  } catch {
    throw new UserError(`${what} not found: ${dir}`);
  }
  if (!stat.isDirectory()) throw new UserError(`${what} is not a folder: ${dir}`);
}

/**
 * Fails with a one-line error unless `dir` can be created or written to, before any work starts.
 */
export function requireWritableDirectory(dir: string): void {
  try {
    fs.mkdirSync(dir, { recursive: true });
    fs.accessSync(dir, fs.constants.W_OK);
  } catch {
    throw new UserError(`output folder is not writable: ${dir}`);
  }
}

/** Hard-link `src` to `dest`, falling back to a copy (other file system, or links not allowed). */
export function linkOrCopy(src: string, dest: string): 'link' | 'copy' {
  try {
    fs.linkSync(src, dest);
    return 'link';
  } catch {
    fs.copyFileSync(src, dest);
    return 'copy';
  }
}

/** Minimal CSV writing (RFC 4180 quoting). */
export function toCsv(header: readonly string[], rows: ReadonlyArray<ReadonlyArray<string | number>>): string {
  const cell = (v: string | number): string => {
    const s = String(v);
    return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
  };
  return [header, ...rows].map((r) => r.map(cell).join(',')).join('\n') + '\n';
}

/** Minimal CSV reading, the inverse of toCsv. */
export function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let cell = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') {
        cell += '"';
        i++;
      } else if (ch === '"') quoted = false;
      else cell += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ',') {
      row.push(cell);
      cell = '';
    } else if (ch === '\n' || ch === '\r') {
      if (ch === '\r' && text[i + 1] === '\n') i++;
      row.push(cell);
      rows.push(row);
      row = [];
      cell = '';
    } else cell += ch;
  }
  if (cell !== '' || row.length > 0) {
    row.push(cell);
    rows.push(row);
  }
  return rows;
}

/** The marker file that says a folder was written by this project and may be replaced by it. */
export const OWNED_MARKER = '.boat-generated.json';

export function isOwnedDirectory(dir: string): boolean {
  return fs.existsSync(path.join(dir, OWNED_MARKER));
}

/**
 * Claims `dir` for a job that writes many files into it over time (the main job's --out), where a
 * whole-folder swap (replaceOwnedDirectory) does not fit. The rule is the one model and split folders
 * follow: a missing folder is created, an empty one is taken, and either then gets the marker of `kind`;
 * a folder with that marker is reused; anything else is the user's, and the call fails before any work.
 */
export function claimOutputDirectory(dir: string, kind: string, flag = '--out'): void {
  const target = path.resolve(dir);
  let stat: fs.Stats | null = null;
  try {
    stat = fs.statSync(target);
  } catch {
    // Missing: created below.
  }
  if (stat && !stat.isDirectory()) throw new UserError(`${flag} ${dir} exists and is not a folder`);
  if (stat) {
    const marker = readOwnedMarker(target);
    if (marker?.kind === kind) return;
    if (marker)
      throw new UserError(
        `${flag} ${dir} is a folder boat made for something else (${String(marker.kind)}); choose another ${flag}`,
      );
    if (fs.readdirSync(target).length > 0)
      throw new UserError(
        `${flag} ${dir} exists and was not made by boat; choose another ${flag} or empty it yourself`,
      );
  }
  requireWritableDirectory(target);
  writeJsonAtomic(path.join(target, OWNED_MARKER), { kind, writtenBy: 'boat' });
}

/**
 * Builds a folder in a temp sibling, then swaps it into place at `dir`.
 *
 * A previous folder at `dir` is replaced only if this project wrote it (it has the marker file);
 * an empty folder is fine; anything else is the user's and the call fails before any work.
 * An interrupted build leaves the previous folder untouched.
 */
export async function replaceOwnedDirectory(
  dir: string,
  marker: { kind: string } & Record<string, unknown>,
  build: (tmpDir: string) => Promise<void>,
): Promise<void> {
  const target = path.resolve(dir);
  recoverInterruptedSave(target);
  if (fs.existsSync(target)) {
    if (!fs.statSync(target).isDirectory()) throw new UserError(`output path exists and is not a folder: ${dir}`);
    if (!isOwnedDirectory(target) && fs.readdirSync(target).length > 0) {
      throw new UserError(
        `output folder ${dir} exists and was not made by boat; choose another --out or empty it yourself`,
      );
    }
  }
  requireWritableDirectory(path.dirname(target));
  const tmp = `${target}.tmp-${process.pid}-${crypto.randomBytes(3).toString('hex')}`;
  const hadBefore = fs.existsSync(target);
  try {
    fs.mkdirSync(tmp);
  } catch (err) {
    throw diskFullError(err, dir, hadBefore) ?? err;
  }
  try {
    await build(tmp);
    fullDiskTestInSave(marker.kind, tmp);
    crashTestInSave(marker.kind, 'build');
    fs.writeFileSync(path.join(tmp, OWNED_MARKER), JSON.stringify({ ...marker, writtenBy: 'boat' }, null, 2) + '\n');
    const old = `${target}.old-${process.pid}-${crypto.randomBytes(3).toString('hex')}`;
    const hadOld = fs.existsSync(target);
    if (hadOld) fs.renameSync(target, old);
    crashTestInSave(marker.kind, 'swap');
    fs.renameSync(tmp, target);
    if (hadOld) fs.rmSync(old, { recursive: true, force: true });
  } catch (err) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw diskFullError(err, dir, hadBefore) ?? err;
  }
}

/**
 * A full disk (or quota) while building a folder, as one line. Nothing was swapped yet, so what was
 * at `dir` before is still there, whole.
 */
function diskFullError(err: unknown, dir: string, hadBefore: boolean): UserError | null {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (code !== 'ENOSPC' && code !== 'EDQUOT') return null;
  const why = code === 'ENOSPC' ? 'no space left on the device' : 'disk quota exceeded';
  return new UserError(
    `cannot save ${dir}: ${why} (${code}); ${hadBefore ? 'the previous one is unchanged' : 'nothing was saved'}; free some space and run again`,
  );
}

/**
 * Repairs what a save killed midway leaves beside `target` (a folder written by replaceOwnedDirectory):
 * when the kill fell between the two renames of the swap, the previous complete folder is waiting as
 * `<target>.old-*` and is moved back; half-built `<target>.tmp-*` folders of dead processes are removed.
 */
export function recoverInterruptedSave(target: string): void {
  const dir = path.dirname(path.resolve(target));
  const base = path.basename(target);
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return;
  }
  const leftovers = names
    .map((name) => /^(.*)\.(tmp|old)-(\d+)-[0-9a-f]{6}$/.exec(name))
    .filter((m): m is RegExpExecArray => m !== null && m[1] === base && !processAlive(Number(m[3])));
  for (const m of leftovers) {
    const full = path.join(dir, m[0]);
    if (m[2] === 'old' && !fs.existsSync(path.resolve(target)) && isOwnedDirectory(full))
      fs.renameSync(full, path.resolve(target));
    else if (m[2] === 'tmp' || isOwnedDirectory(full)) fs.rmSync(full, { recursive: true, force: true });
  }
}

/** Whether a process with this pid is running (on this machine; one owned by another user counts). */
export function processAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The marker a boat-made folder carries (its `kind` says what wrote it), or null for any other folder. */
export function readOwnedMarker(dir: string): Record<string, unknown> | null {
  try {
    return JSON.parse(fs.readFileSync(path.join(dir, OWNED_MARKER), 'utf8')) as Record<string, unknown>;
  } catch {
    return null;
  }
}

/**
 * Reads a file and checks its SHA-256. Errors name the file: "<what> missing: …" or
 * "<what> <badWord> (SHA-256 mismatch): …", followed by `hint` when given.
 */
export function readFileSha256Checked(
  file: string,
  expected: string | undefined,
  what: string,
  badWord = 'corrupt',
  hint = '',
): Buffer {
  const suffix = hint ? ` (${hint})` : '';
  let data: Buffer;
  try {
    data = fs.readFileSync(file);
  } catch {
    throw new UserError(`${what} missing: ${file}${suffix}`);
  }
  if (!expected || sha256Hex(data) !== expected) {
    throw new UserError(`${what} ${badWord} (SHA-256 mismatch): ${file}${suffix}`);
  }
  return data;
}
