// The notebooks as a user steps through them: in the offline JupyterLab build (jupyterlab/, served by
// Debian's jupyterlab-server through npm run lab), driven in Debian's Chromium with playwright-core.
// Notebooks 01 and 04 run on the demo set through the Run menu; committed notebook 06 opens unrun.
// Every notebook is a copy in a folder the test creates: the committed ones are never opened for writing.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { chromium, type Browser, type Page } from 'playwright-core';
import sharp from 'sharp';

import { findFailedCell } from '../lib/cli/notebooks';
import { REPO_ROOT, skipUnlessCi, tempDir } from './helpers';
import { processesMentioning, startLab, type LabServer } from './lab-server';

const CHROMIUM = '/usr/bin/chromium';
const LAB_BUNDLE = path.join(REPO_ROOT, 'jupyterlab', 'build', 'bundle.js');
const hasLabServer =
  spawnSync('/usr/bin/python3', ['-c', 'import jupyterlab_server, jupyter_server'], { encoding: 'utf8' }).status === 0;
const skipReason = !hasLabServer
  ? "Debian's jupyterlab-server is not installed; bash scripts/run.sh lab installs it"
  : !fs.existsSync(LAB_BUNDLE)
    ? 'the offline JupyterLab is not built (jupyterlab/build); bash scripts/run.sh lab builds it'
    : !fs.existsSync(CHROMIUM)
      ? `${CHROMIUM} is not installed; bash scripts/run.sh setup installs it`
      : false;

const EPOCHS = 2;
/** Running one notebook on the demo set, kernel start included, must fit in this. */
const RUN_TIMEOUT_MS = 8 * 60_000;
const VIEWPORT = { width: 1280, height: 1200 };
/** An image output has visible content: colour variation and a share of pixels clearly darker than white. */
const MIN_STDEV = 8;
const MIN_INK = 0.01;
/** The PNG outputs of an image output, not images inside Markdown cells. */
const IMAGE_SELECTOR = '.jp-NotebookPanel:not(.lm-mod-hidden) .jp-OutputArea-output.jp-RenderedImage img';
/** notebookProgress's line: `epoch 2/2 val [####] 6/6 img ...` (or `features [...]` before the epochs). */
const PROGRESS = /^(epoch (\d+)\/(\d+) \w+|features) \[([#.]+)\] (\d+)\/(\d+) img/;

interface NbOutput {
  output_type: string;
  name?: string;
  text?: string | string[];
  data?: Record<string, unknown>;
}
interface NbCell {
  cell_type: string;
  source: string | string[];
  outputs?: NbOutput[];
  execution_count?: number | null;
}
interface Notebook {
  cells: NbCell[];
}

const joined = (text: string | string[] | undefined): string => (Array.isArray(text) ? text.join('') : (text ?? ''));
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const sha256 = (file: string): string => crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');

function readNotebook(file: string): Notebook {
  return JSON.parse(fs.readFileSync(file, 'utf8')) as Notebook;
}

function pngCount(nb: Notebook): number {
  return nb.cells.flatMap((c) => c.outputs ?? []).filter((o) => o.data?.['image/png'] !== undefined).length;
}

/** The committed notebook with its outputs removed, so everything checked after the run comes from this run. */
function copyWithoutOutputs(name: string, dir: string): void {
  const nb = readNotebook(path.join(REPO_ROOT, 'notebooks', `${name}.ipynb`));
  for (const cell of nb.cells)
    if (cell.cell_type === 'code') {
      cell.outputs = [];
      cell.execution_count = null;
    }
  fs.writeFileSync(path.join(dir, `${name}.ipynb`), JSON.stringify(nb, null, 1));
}

/** What the page shows of the current notebook: its kernel, running cells and progress lines. */
interface PanelState {
  path: string;
  kernel: string | null;
  status: string;
  cells: number;
  running: number;
  progress: string[];
}
const PANEL_STATE = `(() => {
  const w = window.boatLab && window.boatLab.shell.currentWidget;
  if (!w || !w.sessionContext || !w.content || !w.context) return null;
  const kernel = w.sessionContext.session && w.sessionContext.session.kernel;
  const prompts = [...w.content.node.querySelectorAll('.jp-CodeCell .jp-InputPrompt')].map((e) => e.textContent);
  const outputs = [...w.content.node.querySelectorAll('.jp-OutputArea-output')].map((e) => e.textContent.trim());
  return {
    path: w.context.path,
    kernel: kernel ? kernel.name : null,
    status: kernel ? kernel.status : 'none',
    cells: prompts.length,
    running: prompts.filter((p) => p.includes('*')).length,
    progress: outputs.filter((t) => ${PROGRESS.toString()}.test(t)),
  };
})()`;
const NOTEBOOK_JSON = 'JSON.stringify(window.boatLab.shell.currentWidget.context.model.toJSON())';

async function panelState(page: Page): Promise<PanelState | null> {
  return page.evaluate<PanelState | null>(PANEL_STATE);
}

async function waitFor<T>(what: string, ms: number, probe: () => Promise<T | null | false>): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms / 1000} s waiting for ${what}`);
    await sleep(500);
  }
}

/** Opens `name` in a fresh workspace and waits until its kernel is idle; returns the page's uncaught errors. */
async function openNotebook(page: Page, server: LabServer, name: string): Promise<PanelState> {
  await page.goto(`${server.base}/lab/tree/${name}.ipynb?reset&token=${server.token}`);
  await page.waitForSelector('body[data-boat-lab="ready"]', { state: 'attached', timeout: 120_000 });
  return waitFor(`${name}: the notebook open and its kernel idle`, 120_000, async () => {
    const s = await panelState(page);
    return s && s.path === `${name}.ipynb` && s.status === 'idle' && s.cells > 0 ? s : null;
  });
}

/** Run > Run All Cells, as a user clicks it; resolves when every cell has run and the kernel is idle again. */
async function runAllFromMenu(
  page: Page,
  name: string,
): Promise<{ seconds: number; progressSeen: Set<string>; mostBarsAtOnce: number }> {
  const start = Date.now();
  await page.locator('.lm-MenuBar-itemLabel', { hasText: /^Run$/ }).click();
  await page.locator('.lm-Menu-itemLabel', { hasText: /^Run All Cells$/ }).click();
  const progressSeen = new Set<string>();
  let mostBarsAtOnce = 0;
  await waitFor(`${name}: a cell running`, 60_000, async () => {
    const s = await panelState(page);
    return s !== null && (s.running > 0 || s.status === 'busy');
  });
  let idlePolls = 0;
  await waitFor(`${name}: all cells run and the kernel idle`, RUN_TIMEOUT_MS, async () => {
    const s = await panelState(page);
    for (const p of s?.progress ?? []) progressSeen.add(p);
    mostBarsAtOnce = Math.max(mostBarsAtOnce, s?.progress.length ?? 0);
    // Twice in a row: between two queued cells the kernel can be idle for a moment.
    idlePolls = s && s.running === 0 && s.status === 'idle' ? idlePolls + 1 : 0;
    return idlePolls >= 2;
  });
  return { seconds: (Date.now() - start) / 1000, progressSeen, mostBarsAtOnce };
}

interface ImageCheck {
  width: number;
  height: number;
  stdev: number;
  ink: number;
}

/** Every image output: loaded, inside the viewport once scrolled to, and not blank on screen. */
async function checkImages(page: Page, label: string, expected: number): Promise<ImageCheck[]> {
  const images = page.locator(IMAGE_SELECTOR);
  assert.equal(await images.count(), expected, `${label}: image outputs on the page`);
  const checks: ImageCheck[] = [];
  for (let i = 0; i < expected; i++) {
    const img = images.nth(i);
    await img.scrollIntoViewIfNeeded();
    const loaded = await page.evaluate<{ complete: boolean; naturalWidth: number }>(
      `(() => { const img = document.querySelectorAll(${JSON.stringify(IMAGE_SELECTOR)})[${i}];
        return { complete: img.complete, naturalWidth: img.naturalWidth }; })()`,
    );
    assert.ok(loaded.complete && loaded.naturalWidth > 0, `${label}: image ${i + 1} is loaded`);
    const box = await img.boundingBox();
    assert.ok(box && box.width > 50 && box.height > 50, `${label}: image ${i + 1} has a size on screen`);
    assert.ok(
      box.x >= 0 && box.y >= 0 && box.x + box.width <= VIEWPORT.width + 1 && box.y + box.height <= VIEWPORT.height + 1,
      `${label}: image ${i + 1} is on screen (${JSON.stringify(box)})`,
    );
    const { data, info } = await sharp(await img.screenshot())
      .removeAlpha()
      .raw()
      .toBuffer({ resolveWithObject: true });
    const stats = await sharp(data, { raw: info }).stats();
    const stdev = Math.max(...stats.channels.map((c) => c.stdev));
    let dark = 0;
    for (let p = 0; p < data.length; p += info.channels) if (data[p] + data[p + 1] + data[p + 2] < 3 * 200) dark++;
    const ink = dark / (info.width * info.height);
    assert.ok(
      stdev >= MIN_STDEV && ink >= MIN_INK,
      `${label}: image ${i + 1} is blank on screen (stdev ${stdev}, ink ${ink})`,
    );
    checks.push({ width: info.width, height: info.height, stdev, ink });
  }
  return checks;
}

/** The whole notebook in one PNG: the viewport is made as tall as the notebook for the shot. */
async function screenshotNotebook(page: Page, file: string): Promise<void> {
  const height = await page.evaluate<number>('window.boatLab.shell.currentWidget.content.node.scrollHeight + 200');
  await page.setViewportSize({ width: VIEWPORT.width, height: Math.min(Math.max(height, VIEWPORT.height), 15_000) });
  await sleep(1000); // Lab lays the panels out again on resize
  await page.evaluate('window.boatLab.shell.currentWidget.content.node.scrollTop = 0');
  await sleep(300);
  await page.screenshot({ path: file });
  await page.setViewportSize(VIEWPORT);
  await sleep(500);
}

function assertNoErrors(nb: Notebook, label: string): void {
  const failed = findFailedCell(JSON.stringify(nb));
  assert.equal(failed, null, `${label}: cell ${(failed?.index ?? 0) + 1} failed: ${failed?.error}`);
}

describe('the notebooks in the offline JupyterLab build (Chromium)', { skip: skipUnlessCi(skipReason) }, () => {
  let work = '';
  let nbDir = '';
  let shotsDir = '';
  let server: LabServer | undefined;
  let browser: Browser | undefined;
  let page: Page;
  const pageErrors: string[] = [];
  const outsideRequests: string[] = [];

  before(async () => {
    work = tempDir('boat-lab-');
    nbDir = path.join(work, 'notebooks');
    fs.mkdirSync(nbDir);
    // The notebooks import '../dist/lib' and packages: the copies see the repo's through links.
    fs.symlinkSync(path.join(REPO_ROOT, 'dist'), path.join(work, 'dist'));
    fs.symlinkSync(path.join(REPO_ROOT, 'node_modules'), path.join(work, 'node_modules'));
    copyWithoutOutputs('01-data', nbDir);
    copyWithoutOutputs('04-feature-extractor', nbDir);
    fs.copyFileSync(
      path.join(REPO_ROOT, 'notebooks', '06-going-further.ipynb'),
      path.join(nbDir, '06-going-further.ipynb'),
    );
    // Kept after the run (not under `work`): the screenshots are the test's artifacts.
    shotsDir = fs.mkdtempSync(path.join(os.tmpdir(), 'boat-jupyterlab-screenshots-'));
    server = await startLab(nbDir, path.join(work, 'jupyter'), {
      BOAT_DATA_ROOT: path.join(work, 'data'),
      BOAT_MODELS: path.join(work, 'models'),
      BOAT_FIGURES: path.join(work, 'figures'),
      BOAT_CACHE_DIR: path.join(work, 'cache'),
      BOAT_DEMO_PER_CLASS: '6',
      BOAT_EPOCHS: String(EPOCHS),
    });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--no-first-run'],
    });
    page = await browser.newPage({ viewport: VIEWPORT });
    page.on('pageerror', (err) => pageErrors.push(err.message));
    page.on('request', (req) => {
      const url = new URL(req.url());
      if (!['127.0.0.1', ''].includes(url.hostname) && !['data:', 'blob:'].includes(url.protocol))
        outsideRequests.push(req.url());
    });
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  test('it starts like jupyter-lab: a URL with its token, the tslab kernel as the default', async () => {
    assert.ok(server);
    assert.match(server.log(), /Serving notebooks from local directory: .*boat-lab-[^/]+\/notebooks/);
    const specs = (await server.api('GET', '/api/kernelspecs')) as { default: string; kernelspecs: object };
    assert.equal(specs.default, 'boat-typescript');
    const anonymous = await fetch(`${server.base}/api/kernelspecs`);
    assert.equal(anonymous.status, 403, 'the API needs the token');
  });

  test('notebook 01 runs on the demo set from the Run menu: no errors, every image shown', async (t) => {
    const name = '01-data';
    const opened = await openNotebook(page, server!, name);
    assert.equal(opened.kernel, 'boat-typescript');
    const { seconds } = await runAllFromMenu(page, name);
    const nb = JSON.parse(await page.evaluate<string>(NOTEBOOK_JSON)) as Notebook;
    assertNoErrors(nb, name);
    const committed = pngCount(readNotebook(path.join(REPO_ROOT, 'notebooks', `${name}.ipynb`)));
    assert.ok(committed > 0);
    assert.equal(pngCount(nb), committed, `${name}: PNG outputs of the run`);
    const images = await checkImages(page, name, committed);
    const shot = path.join(shotsDir, `${name}.png`);
    await screenshotNotebook(page, shot);
    t.diagnostic(`${name}: ran in ${seconds.toFixed(0)} s; ${images.length} images; screenshot ${shot}`);
  });

  test('notebook 04 runs on the demo set: the progress bar updates in place and ends on the last epoch', async (t) => {
    const name = '04-feature-extractor';
    await openNotebook(page, server!, name);
    const { seconds, progressSeen, mostBarsAtOnce } = await runAllFromMenu(page, name);
    const nb = JSON.parse(await page.evaluate<string>(NOTEBOOK_JSON)) as Notebook;
    assertNoErrors(nb, name);
    // One display per training cell, updated in place (tslab's update_display_data), not one output per update.
    const bars = nb.cells.flatMap((c) =>
      (c.outputs ?? []).filter((o) => PROGRESS.test(joined(o.data?.['text/plain'] as string | string[]))),
    );
    assert.equal(bars.length, 1, `${name}: progress displays`);
    assert.equal(mostBarsAtOnce, 1, `${name}: progress lines on the page at once while running`);
    const final = PROGRESS.exec(joined(bars[0].data?.['text/plain'] as string[]))!;
    assert.equal(final[1].startsWith('epoch') ? `${final[2]}/${final[3]}` : final[1], `${EPOCHS}/${EPOCHS}`);
    assert.equal(final[5], final[6], 'the last phase finished');
    assert.ok(!final[4].includes('.'), 'the bar is full');
    const shown = (await panelState(page))?.progress ?? [];
    assert.deepEqual(
      shown.map((s) => PROGRESS.exec(s)?.[0]),
      [final[0]],
      `${name}: the page shows the final progress line`,
    );
    const committed = pngCount(readNotebook(path.join(REPO_ROOT, 'notebooks', `${name}.ipynb`)));
    assert.equal(pngCount(nb), committed, `${name}: PNG outputs of the run`);
    const images = await checkImages(page, name, committed);
    const shot = path.join(shotsDir, `${name}.png`);
    await screenshotNotebook(page, shot);
    t.diagnostic(
      `${name}: ran in ${seconds.toFixed(0)} s; progress lines seen while running: ${progressSeen.size}; ` +
        `final: ${final[0]}; ${images.length} images; screenshot ${shot}`,
    );
  });

  test('committed notebook 06 opens unrun with its stored outputs rendered', async (t) => {
    const name = '06-going-further';
    const file = path.join(nbDir, `${name}.ipynb`);
    const before = sha256(file);
    const stored = readNotebook(file);
    assertNoErrors(stored, `${name} (committed)`);
    const opened = await openNotebook(page, server!, name);
    assert.equal(opened.running, 0, 'nothing runs');
    assert.ok(pngCount(stored) > 0);
    const images = await checkImages(page, name, pngCount(stored));
    // Every stored text output is on the page (Lab joins consecutive stream outputs, so look for the lines).
    const text = await page.evaluate<string>(
      `[...document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-OutputArea-output')].map((e) => e.textContent).join('\\n')`,
    );
    const lines = stored.cells
      .flatMap((c) => c.outputs ?? [])
      .flatMap((o) => joined(o.output_type === 'stream' ? o.text : (o.data?.['text/plain'] as string[])).split('\n'))
      .map((l) => l.trim())
      .filter((l) => l.length > 0);
    assert.ok(lines.length > 0);
    const missing = lines.filter((l) => !text.includes(l));
    assert.deepEqual(missing, [], `${name}: stored text outputs not on the page`);
    const shot = path.join(shotsDir, `${name}.png`);
    await screenshotNotebook(page, shot);
    assert.equal(sha256(file), before, 'opening the notebook did not write it');
    t.diagnostic(`${name}: ${images.length} images, ${lines.length} text lines; screenshot ${shot}`);
  });

  test('the page threw no errors and asked nothing of any other host', () => {
    assert.deepEqual(pageErrors, []);
    assert.deepEqual(outsideRequests, []);
  });

  test('the server, its kernels and Chromium all end', async () => {
    await browser?.close();
    browser = undefined;
    await server?.stop();
    server = undefined;
    const deadline = Date.now() + 15_000;
    let left = processesMentioning(work);
    while (left.length > 0 && Date.now() < deadline) {
      await sleep(300);
      left = processesMentioning(work);
    }
    assert.deepEqual(left, []);
  });
});
