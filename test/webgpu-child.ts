/**
 * The webgpu half of engine-webgpu.test.ts, in its own process (a backend is chosen once per process):
 *   BOAT_BACKEND=webgpu node dist/test/webgpu-child.js WORK DEMO_DIR
 * Writes WORK/result.json and WORK/arrays.f32.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '../lib/engine/tf';

import { selectBackend } from '../lib';
import { startWebgpu } from '../lib/engine/webgpu';
import { runScenario, writeResult } from './engine-scenario';

(async () => {
  const [work, demo] = process.argv.slice(2);
  // Would this adapter be chosen without BOAT_BACKEND? Pretend a GPU device node exists so that Dawn is asked.
  const fakeNode = path.join(work, 'renderD128');
  fs.writeFileSync(fakeNode, '');
  const auto = await startWebgpu({ forced: false, deviceNodes: [fakeNode] });
  const backend = await selectBackend();
  // A tensor computed on the GPU (past the backend's small-tensor CPU shortcut): a synchronous read is refused in a sentence, an asynchronous one works.
  const onGpu = tf.square(tf.fill([4096], 3));
  let syncRead = 'read';
  try {
    onGpu.dataSync();
  } catch (err) {
    syncRead = (err as Error).message;
  }
  const asyncRead = (await onGpu.data())[4095];
  tf.dispose(onGpu);
  const result = await runScenario(work, demo);
  result.values.backendLine = backend.line;
  result.values.auto = auto;
  result.values.syncRead = syncRead;
  result.values.asyncRead = asyncRead;
  writeResult(work, result);
  process.exit(0); // Dawn's instance would keep the event loop alive
})().catch((err) => {
  console.error(`webgpu child: ${(err as Error).stack}`);
  process.exit(1);
});
