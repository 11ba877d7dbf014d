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
 */

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
