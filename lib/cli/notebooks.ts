/**
 * `boat notebooks` (npm run notebooks): executes notebooks/*.ipynb in order with the repo's tslab kernel
 * through Debian's nbconvert, writing executed copies, HTML exports and figures to a run folder. The
 * committed notebooks are never overwritten. A failing cell stops the run and is reported with its
 * source and error text (tslab puts errors only on the cell's stderr, and nbconvert alone says just
 * "<Error>:").
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { Command } from 'commander';

import { UserError, writeFileAtomic } from '../util';
import { commaList } from './options';

const REPO = path.resolve(__dirname, '..', '..', '..');
const PYTHON = '/usr/bin/python3';

interface Output {
  output_type: string;
  name?: string;
  text?: string | string[];
  ename?: string;
  evalue?: string;
}
interface Cell {
  cell_type: string;
  source: string | string[];
  outputs?: Output[];
}

const joined = (t: string | string[] | undefined): string => (Array.isArray(t) ? t.join('') : (t ?? ''));

/** The first failing code cell of an executed notebook, or null. */
export function findFailedCell(notebookJson: string): { index: number; source: string; error: string } | null {
  const cells = (JSON.parse(notebookJson) as { cells: Cell[] }).cells;
  for (const [index, cell] of cells.entries()) {
    if (cell.cell_type !== 'code') continue;
    for (const o of cell.outputs ?? []) {
      const stderr = o.output_type === 'stream' && o.name === 'stderr' ? joined(o.text) : '';
      const isError = o.output_type === 'error' || /(^|\n)\s*(\w*Error\b|Uncaught\b)|^\d+:\d+ - /m.test(stderr);
      if (isError) {
        const error = o.output_type === 'error' ? `${o.ename}: ${o.evalue}` : stderr.trim();
        return { index, source: joined(cell.source), error };
      }
    }
  }
  return null;
}

export function notebookEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return {
    ...process.env,
    PATH: `${path.join(REPO, 'node_modules', '.bin')}:${process.env.PATH ?? ''}`,
    JUPYTER_PATH: [path.join(REPO, 'jupyter'), process.env.JUPYTER_PATH].filter(Boolean).join(':'),
    ...extra,
  };
}

export interface NotebookRunOptions {
  out: string;
  only?: string[];
  env?: Record<string, string>;
  log?: (line: string) => void;
}

/**
 * Numbers the code cells 1, 2, … as executed top to bottom. nbclient copies the count from the kernel's
 * reply, and tslab leaves it empty, so every executed cell read "In [ ]" as if it had never run.
 */
export function numberExecutedCells(notebookJson: string): string {
  const nb = JSON.parse(notebookJson) as {
    cells: Array<{
      cell_type: string;
      execution_count?: number | null;
      outputs?: Array<{ output_type: string; execution_count?: number | null }>;
    }>;
  };
  let count = 0;
  for (const cell of nb.cells) {
    if (cell.cell_type !== 'code') continue;
    cell.execution_count = ++count;
    for (const output of cell.outputs ?? [])
      if (output.output_type === 'execute_result') output.execution_count = count;
  }
  return `${JSON.stringify(nb, null, 1)}\n`;
}

export function runNotebooks(options: NotebookRunOptions): string[] {
  const log = options.log ?? ((l: string) => console.log(l));
  if (spawnSync(PYTHON, ['-c', 'import nbconvert, nbclient'], { encoding: 'utf8' }).status !== 0) {
    throw new UserError('Jupyter nbconvert is not installed for /usr/bin/python3; run: bash scripts/run.sh setup');
  }
  const dir = path.join(REPO, 'notebooks');
  const names = fs
    .readdirSync(dir)
    .filter((n) => /^\d\d-.*\.ipynb$/.test(n))
    .sort()
    .filter((n) => !options.only || options.only.some((o) => n.startsWith(o)));
  const out = path.resolve(options.out);
  fs.mkdirSync(path.join(out, 'figures'), { recursive: true });
  const env = notebookEnv({ BOAT_FIGURES: path.join(out, 'figures'), ...options.env });
  const done: string[] = [];
  for (const name of names) {
    const started = Date.now();
    // The input stays in notebooks/ so the kernel starts there and '../dist/lib' resolves; the executed copy goes to `out`.
    const r = spawnSync(
      PYTHON,
      [
        '-m',
        'nbconvert',
        '--to',
        'notebook',
        '--execute',
        '--allow-errors',
        '--ExecutePreprocessor.timeout=-1',
        // tslab compiles TypeScript as it starts; on 2 busy cores that can take longer than nbclient's 60 s.
        '--ExecutePreprocessor.startup_timeout=300',
        '--output-dir',
        out,
        '--output',
        name,
        path.join(dir, name),
      ],
      { env, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 },
    );
    const executed = path.join(out, name);
    if (r.status !== 0 || !fs.existsSync(executed))
      throw new UserError(`${name}: nbconvert failed: ${(r.stderr || '').trim().split('\n').slice(-3).join(' | ')}`);
    const failed = findFailedCell(fs.readFileSync(executed, 'utf8'));
    if (failed) {
      console.error(
        `--- ${name}, cell ${failed.index + 1} failed ---\n${failed.source}\n--- error ---\n${failed.error}\n---`,
      );
      throw new UserError(
        `${name}: cell ${failed.index + 1} failed: ${failed.error.split('\n')[0]} (executed copy: ${executed})`,
      );
    }
    writeFileAtomic(executed, numberExecutedCells(fs.readFileSync(executed, 'utf8')));
    spawnSync(PYTHON, ['-m', 'nbconvert', '--to', 'html', '--output-dir', out, executed], { env, encoding: 'utf8' });
    log(`${name}: ok in ${((Date.now() - started) / 1000).toFixed(0)} s → ${executed} (+ .html)`);
    done.push(executed);
  }
  return done;
}

/** Help epilog of `boat notebooks` (and a section of docs/cli.md). */
export const NOTEBOOK_ENVIRONMENT = `
Each notebook's first cell holds its parameters; these variables override them:
  BOAT_DATA_ROOT, BOAT_MODELS, BOAT_EPOCHS, BOAT_SEED, BOAT_DEMO_PER_CLASS,
  BOAT_VIEWS, BOAT_CACHE_DIR, BOAT_BACKEND; notebook 03 also BOAT_FT_EPOCHS,
  BOAT_UNFREEZE and BOAT_RESUME=1.`;

export function registerNotebooksCommand(program: Command): void {
  program
    .command('notebooks')
    .description(
      'execute notebooks/*.ipynb headless with the tslab kernel: executed copies, HTML exports and figures (the committed notebooks are not touched)',
    )
    .option('--out <dir>', 'where they go (default: runs/notebooks/<time stamp>)')
    .option(
      '--only <prefixes>',
      'only the notebooks whose names start with these, comma-separated, e.g. 01,02',
      commaList,
    )
    .addHelpText('after', NOTEBOOK_ENVIRONMENT)
    .action(notebooksCommand);
}

export interface NotebooksFlags {
  out?: string;
  only?: string[];
}

export async function notebooksCommand(flags: NotebooksFlags): Promise<void> {
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const out = flags.out ?? path.join('runs', 'notebooks', stamp);
  runNotebooks({ out, only: flags.only });
  console.log(`Executed notebooks, HTML exports and figures in ${path.resolve(out)}`);
}
