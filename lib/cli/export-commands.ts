import { exportModel, serveFolder } from '../export';
import { selectBackend } from '../model';
import { UserError } from '../util';
import { intFlag, parseFlags, requiredString, stringFlag } from './args';

export const EXPORT_USAGE = `  boat export --model models/NAME --out web/NAME [--quantize none|float16|uint8] [--force]
             (a static web site that classifies photos in the browser, offline; --force replaces
             an earlier export only)
  boat serve web/NAME [--port 8080] [--host 127.0.0.1]   serve a folder over HTTP (try an export before hosting it)`;

const mb = (bytes: number): string => `${(bytes / 1e6).toFixed(1)} MB`;

export async function exportCommand(argv: string[]): Promise<void> {
  const { flags } = parseFlags(argv, { model: { type: 'string' }, out: { type: 'string' }, quantize: { type: 'string' }, force: { type: 'boolean', default: false } });
  const model = requiredString(flags, 'model');
  const out = requiredString(flags, 'out');
  console.log((await selectBackend()).line);
  const r = await exportModel({ model, out, quantize: stringFlag(flags, 'quantize'), force: flags.force === true });
  const m = r.manifest;
  console.log(`Exported ${model} (${m.classes.length} classes, ${m.inputSize} px, ${m.precision} weights) to ${out}: model ${mb(r.modelBytes)} in ${m.model.shards} shards, folder ${mb(r.totalBytes)}`);
  console.log(`Largest probability difference from the source model on a test input: ${r.maxProbabilityDifference.toExponential(2)}`);
  console.log(`Try it: boat serve ${out}   (or boat predict --model ${out} IMAGE)`);
}

export async function serveCommand(argv: string[]): Promise<void> {
  const { flags, positionals } = parseFlags(argv, { port: { type: 'string' }, host: { type: 'string' } }, true);
  if (positionals.length !== 1) throw new UserError('give one folder to serve: boat serve web/NAME [--port 8080]');
  const running = await serveFolder({ dir: positionals[0], port: intFlag(flags, 'port'), host: stringFlag(flags, 'host') });
  console.log(`Serving ${positionals[0]} at ${running.url} (Ctrl-C to stop)`);
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
