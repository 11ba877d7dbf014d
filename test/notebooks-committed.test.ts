// The notebooks as committed are what a reader opens first: they must read the same on every machine, tell
// the story without pages of log, and import only what they use.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';

import { REPO_ROOT } from './helpers';

interface Cell {
  cell_type: string;
  source: string | string[];
  outputs?: Array<{ output_type: string; text?: string | string[]; data?: Record<string, string | string[]> }>;
}

const text = (v: string | string[] | undefined): string => [v ?? ''].flat().join('');
const dir = path.join(REPO_ROOT, 'notebooks');
const notebooks = fs
  .readdirSync(dir)
  .filter((n) => n.endsWith('.ipynb'))
  .sort()
  .map((name) => ({
    name,
    cells: (JSON.parse(fs.readFileSync(path.join(dir, name), 'utf8')) as { cells: Cell[] }).cells,
  }));

/** Every text a reader sees in a cell's outputs (streams, and the text/plain of displays and results). */
function outputTexts(cell: Cell): string[] {
  return (cell.outputs ?? []).map((o) => text(o.text) + text(o.data?.['text/plain']));
}

// Absolute paths of a machine: the checkout's own location, or the usual roots of home and scratch folders.
const MACHINE_PATH = /(^|[\s'"(=[])\/(work|home|tmp|root|Users|mnt|var|opt|srv)\//m;

test('the committed notebooks are there', () => {
  assert.ok(notebooks.length >= 7, `found ${notebooks.length} notebooks in ${dir}`);
});

for (const { name, cells } of notebooks) {
  test(`${name}: no absolute path of the machine that ran it, in code or outputs`, () => {
    for (const [i, cell] of cells.entries()) {
      for (const t of [text(cell.source), ...outputTexts(cell)]) {
        assert.ok(!t.includes(REPO_ROOT), `cell ${i + 1} shows the checkout's location ${REPO_ROOT}`);
        const m = MACHINE_PATH.exec(t);
        assert.equal(m, null, `cell ${i + 1} shows an absolute path: …${m ? t.slice(m.index, m.index + 60) : ''}…`);
      }
    }
  });

  test(`${name}: training logs collapse to the progress display (no line per epoch in the output)`, () => {
    for (const [i, cell] of cells.entries()) {
      for (const o of cell.outputs ?? []) {
        if (o.output_type !== 'stream') continue;
        const perEpoch = text(o.text)
          .split('\n')
          .filter((l) => /^epoch \d+\/\d+ (train|val)\b/.test(l));
        assert.ok(perEpoch.length <= 2, `cell ${i + 1} prints ${perEpoch.length} per-epoch lines`);
      }
    }
  });

  test(`${name}: every imported name is used`, () => {
    const code = cells.filter((c) => c.cell_type === 'code').map((c) => text(c.source));
    const all = code.join('\n');
    const imports = [...all.matchAll(/^import\s+(.+?)\s+from\s+['"][^'"]+['"];?\s*$/gm)];
    assert.ok(imports.length > 0, 'no imports found: the check would be empty');
    const rest = all.replace(/^import\s+.+$/gm, '');
    for (const m of imports) {
      const clause = m[1];
      const names = clause.startsWith('* as ')
        ? [clause.slice(5).trim()]
        : clause
            .replace(/[{}]/g, '')
            .split(',')
            .map((s) => s.trim().replace(/^type\s+/, ''))
            .map((s) => s.split(/\s+as\s+/).pop()!)
            .filter(Boolean);
      for (const n of names) assert.match(rest, new RegExp(`\\b${n}\\b`), `${n} is imported but never used`);
    }
  });

  test(`${name}: a resumed run is shown and explained`, () => {
    const resumed = cells.some((c) => outputTexts(c).some((t) => t.includes('Resuming from')));
    const explained = cells.some((c) => c.cell_type === 'markdown' && /resum/i.test(text(c.source)));
    assert.ok(!resumed || explained, 'an output says "Resuming from" but no text cell explains the resume');
  });
}
