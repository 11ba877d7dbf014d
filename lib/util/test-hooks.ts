/**
 * Crash-test hooks: the only module that reads the BOAT_TEST_* environment variables. The reliability
 * tests run the CLI as a child process and set one of them to SIGKILL it at a chosen point, proving that
 * saves and checkpoints survive a hard kill. Unset (always, outside those tests), every hook does nothing.
 * The variables are read here rather than passed as options because a killed child process is the point:
 * nothing in the parent can reach inside it.
 *
 *   BOAT_TEST_KILL_IN_SAVE=<kind>:<build|swap>[:<n>]  die at that stage of the n-th (default 1st) save of
 *                                                     a folder of that kind (boat-model, boat-checkpoint)
 *   BOAT_TEST_KILL_AFTER_EPOCH=<n>                    die right after epoch n's checkpoint is written
 *   BOAT_TEST_FULL_DISK=<kind>[:<n>]                  the n-th save (default 1st) of a folder of that kind
 *                                                     fails as a full disk does, after a partial file
 *   BOAT_TEST_NO_NATIVE_BF16=1                        the CPU is reported to have no native bf16, so the
 *                                                     refusal of --precision bf16 is tested on any machine
 */

import * as fs from 'node:fs';
import * as path from 'node:path';

const savesSeen = new Map<string, number>();

/** Called by the atomic folder writer at each stage of a save. */
export function crashTestInSave(kind: string, stage: 'build' | 'swap'): void {
  const spec = process.env.BOAT_TEST_KILL_IN_SAVE;
  if (!spec) return;
  const [k, s, n] = spec.split(':');
  if (k !== kind || s !== stage) return;
  const count = (savesSeen.get(kind) ?? 0) + 1;
  savesSeen.set(kind, count);
  if (count === Number(n ?? 1)) process.kill(process.pid, 'SIGKILL');
}

/** Called after the checkpoint of `epoch` (counting from 1) is on disk. */
export function crashTestAfterEpoch(epoch: number): void {
  if (process.env.BOAT_TEST_KILL_AFTER_EPOCH === String(epoch)) process.kill(process.pid, 'SIGKILL');
}

const diskTestSaves = new Map<string, number>();

/** Called by the atomic folder writer once a folder's files are built in `tmp`, before its swap. */
export function fullDiskTestInSave(kind: string, tmp: string): void {
  const spec = process.env.BOAT_TEST_FULL_DISK;
  if (!spec) return;
  const [k, n] = spec.split(':');
  if (k !== kind) return;
  const count = (diskTestSaves.get(kind) ?? 0) + 1;
  diskTestSaves.set(kind, count);
  if (count !== Number(n ?? 1)) return;
  const file = path.join(tmp, 'partial.bin');
  fs.writeFileSync(file, Buffer.alloc(4096));
  throw Object.assign(new Error(`ENOSPC: no space left on device, write '${file}'`), {
    code: 'ENOSPC',
    errno: -28,
    syscall: 'write',
    path: file,
  });
}

/** Whether to report the CPU as one without native bf16 (the native addon's answer is ignored). */
export function testHideNativeBf16(): boolean {
  return process.env.BOAT_TEST_NO_NATIVE_BF16 === '1';
}
