import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';

import { REPO_ROOT, skipUnlessCi } from './helpers';

const JUPYTER_PYTHON = '/usr/bin/python3';
const hasJupyter = spawnSync(JUPYTER_PYTHON, ['-c', 'import nbconvert, nbclient'], { encoding: 'utf8' }).status === 0;

test(
  'the repo kernelspec runs TypeScript cells that import the typed library',
  {
    skip: skipUnlessCi(
      !hasJupyter && 'Debian Jupyter (nbconvert) is not installed; bash scripts/run.sh setup installs it',
    ),
  },
  () => {
    const dir = path.join(REPO_ROOT, 'runs', `kernel-test-${process.pid}`);
    fs.mkdirSync(dir, { recursive: true });
    const notebook = {
      nbformat: 4,
      nbformat_minor: 5,
      metadata: {
        kernelspec: { name: 'boat-typescript', display_name: 'TypeScript (boat, tslab)', language: 'typescript' },
      },
      cells: [
        {
          cell_type: 'code',
          id: 'c1',
          metadata: {},
          execution_count: null,
          outputs: [],
          source:
            "import { classCounts } from '../../dist/lib/data/explore';\nconst counts = classCounts([{ category: 'kayak', filepath: 'k.jpg', width: 4, height: 3 }]);\nconsole.log(JSON.stringify(counts));",
        },
      ],
    };
    fs.writeFileSync(path.join(dir, 'k.ipynb'), JSON.stringify(notebook));
    const env = {
      ...process.env,
      PATH: `${path.join(REPO_ROOT, 'node_modules', '.bin')}:${process.env.PATH}`,
      JUPYTER_PATH: path.join(REPO_ROOT, 'jupyter'),
    };
    const r = spawnSync(
      JUPYTER_PYTHON,
      ['-m', 'nbconvert', '--to', 'notebook', '--execute', '--allow-errors', 'k.ipynb', '--output', 'out.ipynb'],
      { cwd: dir, env, encoding: 'utf8', timeout: 120_000 },
    );
    assert.equal(r.status, 0, r.stderr);
    const executed = JSON.parse(fs.readFileSync(path.join(dir, 'out.ipynb'), 'utf8')) as {
      cells: Array<{ outputs: Array<{ name?: string; text?: string | string[] }> }>;
    };
    const outputs = executed.cells[0].outputs.map(
      (o) => `${o.name}: ${([] as string[]).concat(o.text ?? []).join('')}`,
    );
    assert.deepEqual(outputs, ['stdout: [{"category":"kayak","count":1}]\n']);
    fs.rmSync(dir, { recursive: true, force: true });
  },
);
