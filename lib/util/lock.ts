/**
 * A lock file holding the pid of the process that owns a path, so that two runs writing the same
 * output cannot interleave their saves. A lock whose process is no longer running (killed, crashed)
 * is stale and taken over; a live one makes the second run a one-line error naming its pid.
 *
 * Written here rather than taken from npm: proper-lockfile, the well-kept one, decides staleness by
 * the lock's age (mtime), not by whether its process lives, and records no pid to name.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { UserError } from './errors';
import { processAlive } from './files';

export interface LockInfo {
  pid: number;
  host: string;
  started: string;
  command: string;
}

export interface HeldLock {
  file: string;
  /** Set when a stale lock was taken over: the pid that had left it. */
  tookOverFrom?: number;
  release(): void;
}

function readLock(file: string): LockInfo | null {
  try {
    const info = JSON.parse(fs.readFileSync(file, 'utf8')) as LockInfo;
    return Number.isInteger(info.pid) ? info : null;
  } catch {
    return null;
  }
}

/** A lock on another machine (a shared folder) cannot be checked for liveness: it counts as held. */
function held(info: LockInfo | null): boolean {
  return info !== null && (info.host !== os.hostname() || processAlive(info.pid));
}

/**
 * Takes the lock file `file` for `what` (words for the error, e.g. "the output models/x"). Creating the
 * file with O_EXCL is the atomic step: of two runs, exactly one creates it.
 */
export function acquireLock(file: string, what: string): HeldLock {
  const mine: LockInfo = {
    pid: process.pid,
    host: os.hostname(),
    started: new Date().toISOString(),
    command: process.argv
      .slice(1)
      .map((a) => path.basename(a))
      .join(' '),
  };
  let tookOverFrom: number | undefined;
  for (let attempt = 0; attempt < 5; attempt++) {
    try {
      fs.writeFileSync(file, JSON.stringify(mine) + '\n', { flag: 'wx' });
      const release = (): void => {
        process.off('exit', release);
        // Only our own lock: never one a later run took over after this process was thought dead.
        if (readLock(file)?.pid === process.pid) fs.rmSync(file, { force: true });
      };
      process.on('exit', release);
      return { file, tookOverFrom, release };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST')
        throw new UserError(`cannot create the lock file ${file}: ${(err as Error).message}`);
    }
    const info = readLock(file);
    if (info && held(info))
      throw new UserError(
        `${what} is in use by another run (pid ${info.pid} on ${info.host}, since ${info.started}; lock file ${file}); wait for it to end, or stop it`,
      );
    if (info === null && Date.now() - mtimeMs(file) < 2000) {
      // Just created and not yet written by its owner: give it a moment, then look again.
      sleepMs(100);
      continue;
    }
    // Stale: move it aside under a name of our own, so that of two runs taking it over only one wins.
    const aside = `${file}.stale-${process.pid}`;
    try {
      fs.renameSync(file, aside);
    } catch {
      continue; // another run moved it first; try again from the top
    }
    const moved = readLock(aside);
    if (moved && held(moved)) {
      // A live run's fresh lock was moved, not the stale one: put it back and yield to it.
      try {
        fs.linkSync(aside, file);
      } catch {
        // Someone locked again meanwhile; the live run keeps its open files either way.
      }
      fs.rmSync(aside, { force: true });
      throw new UserError(
        `${what} is in use by another run (pid ${moved.pid} on ${moved.host}; lock file ${file}); wait for it to end, or stop it`,
      );
    }
    fs.rmSync(aside, { force: true });
    tookOverFrom = moved?.pid ?? -1;
  }
  throw new UserError(`could not take the lock file ${file}; if no other run is using it, delete it`);
}

function mtimeMs(file: string): number {
  try {
    return fs.statSync(file).mtimeMs;
  } catch {
    return 0;
  }
}

function sleepMs(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}
