import { errorLine, UserError } from '../util';
import { benchCommand } from './bench';
import { dataCommand, DATA_USAGE } from './data-commands';
import { mainJob } from './main-job';
import { EXPLAIN_USAGE, explainCommand, lrFindCommand } from './explain-commands';
import { evaluateCommand, MODEL_USAGE, predictCommand, soupCommand, trainCommand } from './model-commands';
import { notebooksCommand } from './notebooks';

const USAGE = `boat: boat types recognition with ResNet50 (TypeScript port of the tutorial)

${DATA_USAGE}
${MODEL_USAGE}
${EXPLAIN_USAGE}
  boat main [--data DIR] [--out runs/main]   the whole tutorial, headless (without --data: data/boats, and
            the synthetic demo set there when it is empty or missing); --out must be new, empty or its own
            [--epochs 24] [--finetune-epochs 2] [--unfreeze 1|…|5|all] [--seed 38] [--demo-per-class 40]
            [--copy] (the split copies the photos instead of hard-linking them)
  boat bench [--quick] [--json FILE] [--data DIR]   speed measurements (npm run bench)
  boat notebooks [--out DIR] [--only 01,02]   execute the notebooks headless (npm run notebooks)

Set BOAT_DEBUG=1 to see stack traces, BOAT_BACKEND=wasm|cpu|tensorflow to pick the engine,
BOAT_THREADS=N for the wasm engine's threads (default: one per core).`;

const COMMANDS: Record<string, (argv: string[]) => Promise<void>> = {
  data: dataCommand,
  main: mainJob,
  train: trainCommand,
  evaluate: evaluateCommand,
  predict: predictCommand,
  soup: soupCommand,
  explain: explainCommand,
  'lr-find': lrFindCommand,
  bench: benchCommand,
  notebooks: notebooksCommand,
};

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    if (command === undefined || ['help', '--help', '-h'].includes(command)) {
      console.log(USAGE);
      return 0;
    }
    const run = COMMANDS[command];
    if (!run) throw new UserError(`unknown command "${command}" (boat --help lists the commands)`);
    await run(rest);
    return 0;
  } catch (err) {
    if (process.env.BOAT_DEBUG) console.error(err);
    const message = err instanceof UserError ? err.message : errorLine(err);
    console.error(`boat: error: ${message}`);
    return err instanceof UserError ? 2 : 1;
  }
}
