/**
 * The child process of `boat bench --profile` (profile.ts starts it with ONEDNN_VERBOSE=1): ResNet50 with
 * the tutorial's head, a train step and a forward pass in fp32 and, where the CPU has native bf16, in bf16,
 * each profiled after a warm-up step and one unprofiled step. Its markers and its result go to stdout (a
 * file), one line each, among oneDNN's; writeSync keeps them in order with what oneDNN prints there.
 */
import * as fs from 'node:fs';

import { fineTuneSupport, nativeBf16Support, selectBackend } from '../engine';
import { createBoatModel } from '../model';
import {
  ChildResult,
  forwardWorkload,
  MARKER,
  profileSteps,
  ProfileOptions,
  trainWorkload,
  WorkloadName,
  type Workload,
} from './profile';

const emit = (line: string): void => {
  fs.writeSync(1, `${MARKER},${line}\n`);
};

async function main(options: ProfileOptions): Promise<void> {
  const backend = await selectBackend(undefined, 'fp32');
  const model = await createBoatModel({
    classes: ['a', 'b', 'c', 'd', 'e'],
    mode: 'finetune',
    inputSize: options.size,
  });
  const result: ChildResult = { backend: backend.line, sections: [], skipped: [] };
  const precisions: Array<'fp32' | 'bf16'> = ['fp32'];
  const bf16 = nativeBf16Support();
  if (bf16.ok) precisions.push('bf16');
  else result.skipped.push(`bf16: ${bf16.reason}`);
  const train = fineTuneSupport();
  if (!train.ok) result.skipped.push(`train step: ${train.reason}`);
  const workloads: WorkloadName[] = train.ok ? ['train', 'forward'] : ['forward'];
  try {
    for (const precision of precisions) {
      await selectBackend(undefined, precision);
      for (const name of workloads) {
        const workload: Workload =
          name === 'train'
            ? trainWorkload(model, options.batch, options.size)
            : forwardWorkload(model, options.batch, options.size);
        try {
          await workload.step();
          // One unprofiled step, to show what the wrapping, the markers and oneDNN's printing cost.
          const start = performance.now();
          await workload.step();
          const plainStepMs = performance.now() - start;
          emit(`begin,${precision},${name}`);
          const profile = await profileSteps(
            () => workload.step(),
            options.steps[name],
            (kernel) => emit(`kernel,${kernel ?? ''}`),
          );
          emit('end');
          result.sections.push({ precision, workload: name, profile, plainStepMs });
        } finally {
          workload.dispose();
        }
      }
    }
  } finally {
    model.dispose();
  }
  emit(`result,${JSON.stringify(result)}`);
}

main(JSON.parse(process.argv[2] ?? '{}') as ProfileOptions).catch((err: unknown) => {
  console.error(`boat: error: ${(err as Error).message}`);
  process.exitCode = 1;
});
