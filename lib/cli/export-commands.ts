/** `boat export` (a trained model as a static web site) and `boat serve` (try it on localhost). */
import { Command, Option } from 'commander';

import { exportModel, serveFolder } from '../export';
import { selectBackend } from '../engine';
import { port } from './options';
import { required } from './program';

const QUANTIZATIONS = ['none', 'float16', 'uint8'] as const;

export function registerExportCommands(program: Command): void {
  program
    .command('export')
    .description('a trained model as a static web site that classifies photos in the browser, offline')
    .addOption(required(new Option('--model <dir>', 'a model saved by boat train or boat soup')))
    .addOption(required(new Option('--out <dir>', 'the folder to write (web/NAME)')))
    .addOption(
      new Option('--quantize <kind>', 'weight storage: float32, float16 or 8-bit affine')
        .choices(QUANTIZATIONS)
        .default('none'),
    )
    .option('--force', 'replace an earlier export at --out (never any other folder)', false)
    .action(exportCommand);
  program
    .command('serve')
    .description('serve a folder (an export) over HTTP on this machine, to try it before hosting it')
    .argument('<dir>', 'the folder to serve')
    .option('--port <n>', 'TCP port (0 picks a free one)', port, 8080)
    .option('--host <address>', 'address to listen on', '127.0.0.1')
    .action(serveCommand);
}

export interface ExportFlags {
  model: string;
  out: string;
  quantize: (typeof QUANTIZATIONS)[number];
  force: boolean;
}

const mb = (bytes: number): string => `${(bytes / 1e6).toFixed(1)} MB`;

export async function exportCommand(flags: ExportFlags): Promise<void> {
  const { model, out } = flags;
  console.log((await selectBackend()).line);
  const r = await exportModel({ model, out, quantize: flags.quantize, force: flags.force });
  const m = r.manifest;
  console.log(
    `Exported ${model} (${m.classes.length} classes, ${m.inputSize} px, ${m.precision} weights) to ${out}: model ${mb(r.modelBytes)} in ${m.model.shards} shards, folder ${mb(r.totalBytes)}`,
  );
  console.log(
    `Largest probability difference from the source model on a test input: ${r.maxProbabilityDifference.toExponential(2)}`,
  );
  console.log(`Try it: boat serve ${out}   (or boat predict --model ${out} IMAGE)`);
}

export interface ServeFlags {
  port: number;
  host: string;
}

export async function serveCommand(dir: string, flags: ServeFlags): Promise<void> {
  const running = await serveFolder({ dir, port: flags.port, host: flags.host });
  console.log(`Serving ${dir} at ${running.url} (Ctrl-C to stop)`);
  await new Promise<void>((resolve) => {
    const stop = (): void => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      void running.close().then(resolve);
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
}
