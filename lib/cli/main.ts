import { errorLine, UserError } from '../util';
import { benchCommand } from './bench';
import { dataCommand, DATA_USAGE } from './data-commands';
import { mainJob } from './main-job';
import { evaluateCommand, MODEL_USAGE, predictCommand, trainCommand } from './model-commands';

const USAGE = `boat: boat types recognition with ResNet50 (TypeScript port of the tutorial)

${DATA_USAGE}
${MODEL_USAGE}
  boat main [--data DIR] [--out runs/main]   the whole tutorial, headless (demo data when no real data)
  boat bench [--quick] [--json FILE] [--data DIR]   speed measurements (npm run bench)

Set BOAT_DEBUG=1 to see stack traces.`;

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'data':
        await dataCommand(rest);
        return 0;
      case 'main':
        await mainJob(rest);
        return 0;
      case 'train':
        await trainCommand(rest);
        return 0;
      case 'evaluate':
        await evaluateCommand(rest);
        return 0;
      case 'predict':
        await predictCommand(rest);
        return 0;
      case 'bench':
        await benchCommand(rest);
        return 0;
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        console.log(USAGE);
        return 0;
      default:
        throw new UserError(`unknown command "${command}"\n${USAGE}`);
    }
  } catch (err) {
    if (process.env.BOAT_DEBUG) console.error(err);
    const message = err instanceof UserError ? err.message : errorLine(err);
    console.error(`boat: error: ${message}`);
    return err instanceof UserError ? 2 : 1;
  }
}
