// Looks at the executed notebooks as a person would: opens them in headless Chromium, once in Debian's
// classic Jupyter Notebook 6 (served, outputs as saved, nothing re-run) and once as the nbconvert HTML
// export, screenshots every chart and checks that something is drawn there.
//
// Chromium is driven with the DevTools protocol over --remote-debugging-pipe: JSON messages separated by
// NUL bytes on file descriptors 3 (to the browser) and 4 (from it), so no WebSocket and no new dependency.
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { pathToFileURL } from 'node:url';
import sharp from 'sharp';

import { REPO_ROOT, runCli, skipUnlessCi, tempDir } from './helpers';

const CHROMIUM = '/usr/bin/chromium';
const JUPYTER_PYTHON = '/usr/bin/python3';
const hasNotebook =
  spawnSync(JUPYTER_PYTHON, ['-c', 'import notebook, nbconvert, nbclient'], { encoding: 'utf8' }).status === 0;
const hasChromium = fs.existsSync(CHROMIUM);
const skipReason = !hasNotebook
  ? 'Debian Jupyter (notebook, nbconvert) is not installed; bash scripts/run.sh setup installs it'
  : !hasChromium
    ? `${CHROMIUM} is not installed; bash scripts/run.sh setup installs it`
    : false;

const NOTEBOOKS = ['01-data', '04-feature-extractor'];
/** Everything for one page (load, wait for the charts, screenshots) must fit in this. */
const PAGE_TIMEOUT_MS = 60_000;
/** Tall enough that every chart fits on screen once scrolled into view. */
const VIEWPORT = { width: 1280, height: 1200 };
/** A chart has visible marks: some colour variation and a share of pixels clearly darker than the white background. */
const MIN_STDEV = 8;
const MIN_INK = 0.01;

interface FrontEnd {
  name: string;
  slug: string;
  /** The <img> elements of PNG outputs, in document order (not images inside Markdown cells). */
  imageSelector: string;
}
const NOTEBOOK6: FrontEnd = {
  name: 'Jupyter Notebook 6',
  slug: 'notebook6',
  imageSelector: '#notebook .output_area .output_png img',
};
const HTML_EXPORT: FrontEnd = {
  name: 'nbconvert HTML export',
  slug: 'html',
  imageSelector: '.jp-OutputArea-output.jp-RenderedImage img[src^="data:image/png"]',
};

// ---------------------------------------------------------------------------------------------------
// Small utilities

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function num(value: unknown, what: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value))
    throw new Error(`${what}: expected a number, got ${JSON.stringify(value)}`);
  return value;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Rejects with `message` when `promise` has not settled within `ms`. */
async function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** How many outputs of the notebook carry a PNG (what every front end should show as a chart). */
function pngOutputCount(ipynb: string): number {
  const nb: unknown = JSON.parse(fs.readFileSync(ipynb, 'utf8'));
  const cells = isRecord(nb) && Array.isArray(nb.cells) ? nb.cells : [];
  let count = 0;
  for (const cell of cells) {
    const outputs = isRecord(cell) && Array.isArray(cell.outputs) ? cell.outputs : [];
    for (const output of outputs)
      if (isRecord(output) && isRecord(output.data) && output.data['image/png'] !== undefined) count++;
  }
  return count;
}

/** Resolves true when the child has exited (or had already), false after `ms`. */
function waitForExit(child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

/** Signals the whole process group of a child started with `detached: true` (its helpers included). */
function signalGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // ESRCH: the group is already gone.
  }
}

/** Keeps the last few KiB a child wrote, for error messages. */
function tailOf(streams: Array<Readable | null>): () => string {
  let text = '';
  for (const stream of streams) {
    stream?.on('data', (chunk: Buffer) => {
      text = (text + chunk.toString('utf8')).slice(-4000);
    });
  }
  return () => text;
}

/** Processes (other than this one) whose command line mentions `marker` (a temp folder of this test), as "pid: command". */
function processesMentioning(marker: string): string[] {
  if (!fs.existsSync('/proc')) return [];
  const found: string[] = [];
  for (const pid of fs.readdirSync('/proc').filter((n) => /^\d+$/.test(n) && Number(n) !== process.pid)) {
    try {
      const cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ').trim();
      if (cmdline.includes(marker)) found.push(`${pid}: ${cmdline.slice(0, 200)}`);
    } catch {
      // The process ended while we looked.
    }
  }
  return found;
}

/** Waits up to `ms` for the processes mentioning `marker` to end; returns those still there. */
async function waitUntilGone(marker: string, ms: number): Promise<string[]> {
  const deadline = Date.now() + ms;
  let left = processesMentioning(marker);
  while (left.length > 0 && Date.now() < deadline) {
    await sleep(200);
    left = processesMentioning(marker);
  }
  return left;
}

/** Last resort after a failure: SIGKILL, by process id, whatever still mentions `marker`. */
function killProcessesMentioning(marker: string): void {
  for (const entry of processesMentioning(marker)) {
    try {
      process.kill(Number(entry.split(':')[0]), 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
}

// ---------------------------------------------------------------------------------------------------
// A tiny DevTools protocol client over Chromium's --remote-debugging-pipe

type CdpResult = Record<string, unknown>;
interface Pending {
  method: string;
  resolve: (result: CdpResult) => void;
  reject: (error: Error) => void;
}

class CdpClient {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private partial: Buffer[] = [];
  private closedBecause: Error | null = null;

  constructor(
    private readonly toBrowser: Writable,
    fromBrowser: Readable,
  ) {
    fromBrowser.on('data', (chunk: Buffer) => this.receive(chunk));
    fromBrowser.on('close', () => this.fail(new Error('Chromium closed the DevTools pipe')));
    fromBrowser.on('error', (error: Error) => this.fail(error));
    toBrowser.on('error', (error: Error) => this.fail(error));
  }

  /** Sends one command (to the browser, or to an attached page when `sessionId` is given) and resolves its result. */
  send(
    method: string,
    params: Record<string, unknown> = {},
    sessionId?: string,
    timeoutMs = 30_000,
  ): Promise<CdpResult> {
    if (this.closedBecause) return Promise.reject(this.closedBecause);
    const id = this.nextId++;
    return new Promise<CdpResult>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`DevTools ${method}: no answer within ${timeoutMs / 1000} s`));
      }, timeoutMs);
      const done = (): void => {
        clearTimeout(timer);
        this.pending.delete(id);
      };
      this.pending.set(id, {
        method,
        resolve: (result) => (done(), resolve(result)),
        reject: (error) => (done(), reject(error)),
      });
      this.toBrowser.write(`${JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) })}\0`);
    });
  }

  private receive(chunk: Buffer): void {
    let start = 0;
    for (let nul = chunk.indexOf(0); nul !== -1; nul = chunk.indexOf(0, start)) {
      this.partial.push(chunk.subarray(start, nul));
      const text = Buffer.concat(this.partial).toString('utf8');
      this.partial = [];
      start = nul + 1;
      this.dispatch(text);
    }
    if (start < chunk.length) this.partial.push(chunk.subarray(start));
  }

  private dispatch(text: string): void {
    const message: unknown = JSON.parse(text);
    if (!isRecord(message) || typeof message.id !== 'number') return; // an event: none is needed here
    const waiter = this.pending.get(message.id);
    if (!waiter) return;
    if (isRecord(message.error))
      waiter.reject(new Error(`DevTools ${waiter.method}: ${String(message.error.message)}`));
    else waiter.resolve(isRecord(message.result) ? message.result : {});
  }

  private fail(reason: Error): void {
    this.closedBecause ??= reason;
    for (const waiter of [...this.pending.values()]) waiter.reject(reason);
  }
}

/** One browser tab, attached with its own DevTools session. */
class Tab {
  private constructor(
    private readonly cdp: CdpClient,
    private readonly targetId: string,
    private readonly sessionId: string,
  ) {}

  static async open(cdp: CdpClient): Promise<Tab> {
    const { targetId } = await cdp.send('Target.createTarget', { url: 'about:blank' });
    if (typeof targetId !== 'string') throw new Error('Target.createTarget returned no targetId');
    const { sessionId } = await cdp.send('Target.attachToTarget', { targetId, flatten: true });
    if (typeof sessionId !== 'string') throw new Error('Target.attachToTarget returned no sessionId');
    const tab = new Tab(cdp, targetId, sessionId);
    await tab.send('Emulation.setDeviceMetricsOverride', { ...VIEWPORT, deviceScaleFactor: 1, mobile: false });
    return tab;
  }

  send(method: string, params: Record<string, unknown> = {}): Promise<CdpResult> {
    return this.cdp.send(method, params, this.sessionId);
  }

  async navigate(url: string): Promise<void> {
    const { errorText } = await this.send('Page.navigate', { url });
    if (typeof errorText === 'string' && errorText) throw new Error(`cannot open ${url}: ${errorText}`);
  }

  /** Runs `expression` in the page (promises awaited) and returns its JSON value. */
  async evaluate(expression: string): Promise<unknown> {
    const reply = await this.send('Runtime.evaluate', { expression, returnByValue: true, awaitPromise: true });
    if (isRecord(reply.exceptionDetails)) {
      const exception = isRecord(reply.exceptionDetails.exception)
        ? reply.exceptionDetails.exception.description
        : reply.exceptionDetails.text;
      throw new Error(`script failed in the page: ${String(exception)}`);
    }
    return isRecord(reply.result) ? reply.result.value : undefined;
  }

  /** Polls `expression` (which yields an object with a boolean `done`) until done; on timeout the error shows the last state. */
  async waitFor(expression: string, timeoutMs: number, what: string): Promise<Record<string, unknown>> {
    const deadline = Date.now() + timeoutMs;
    let last: unknown;
    for (;;) {
      last = await this.evaluate(expression).catch((error: unknown) => `evaluate failed: ${String(error)}`);
      if (isRecord(last) && last.done === true) return last;
      if (Date.now() > deadline)
        throw new Error(`${what}: not done after ${Math.round(timeoutMs / 1000)} s; last seen ${JSON.stringify(last)}`);
      await sleep(250);
    }
  }

  /** A PNG of the given region of the page, in CSS pixels. */
  async screenshot(clip: { x: number; y: number; width: number; height: number }): Promise<Buffer> {
    const { data } = await this.send('Page.captureScreenshot', { format: 'png', clip: { ...clip, scale: 1 } });
    if (typeof data !== 'string') throw new Error('Page.captureScreenshot returned no data');
    return Buffer.from(data, 'base64');
  }

  async close(): Promise<void> {
    await this.cdp.send('Target.closeTarget', { targetId: this.targetId }, undefined, 5_000).catch(() => undefined);
  }
}

interface Browser {
  cdp: CdpClient;
  close(): Promise<void>;
}

async function launchChromium(profileDir: string): Promise<Browser> {
  const args = [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-background-networking',
    '--remote-debugging-pipe',
    `--user-data-dir=${profileDir}`,
    '--no-first-run',
    '--no-default-browser-check',
    '--hide-scrollbars',
    '--mute-audio',
    'about:blank',
  ];
  // detached: its own process group, so that renderer and helper processes can be ended with it.
  // Its own config and cache folders too: the crash handler keeps its database there, not in the profile.
  const env = {
    ...process.env,
    XDG_CONFIG_HOME: path.join(profileDir, 'config'),
    XDG_CACHE_HOME: path.join(profileDir, 'cache'),
  };
  const child = spawn(CHROMIUM, args, { env, stdio: ['ignore', 'ignore', 'pipe', 'pipe', 'pipe'], detached: true });
  const log = tailOf([child.stderr]);
  const [toBrowser, fromBrowser] = [child.stdio[3], child.stdio[4]];
  if (!(toBrowser instanceof Writable) || !(fromBrowser instanceof Readable))
    throw new Error('no DevTools pipe to Chromium');
  const cdp = new CdpClient(toBrowser, fromBrowser);
  const close = async (): Promise<void> => {
    void cdp.send('Browser.close', {}, undefined, 5_000).catch(() => undefined);
    if (!(await waitForExit(child, 10_000))) signalGroup(child, 'SIGKILL');
    signalGroup(child, 'SIGKILL'); // helpers that outlived the browser process
    await waitForExit(child, 5_000);
    await waitUntilGone(profileDir, 5_000);
  };
  try {
    await cdp.send('Browser.getVersion', {}, undefined, 30_000);
  } catch (error) {
    await close();
    throw new Error(`Chromium did not start: ${String(error)}\n${log()}`);
  }
  return { cdp, close };
}

// ---------------------------------------------------------------------------------------------------
// Debian's classic Jupyter Notebook server

interface NotebookServer {
  pageUrl(notebook: string): string;
  stop(): Promise<void>;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = isRecord(address) && typeof address.port === 'number' ? address.port : 0;
      server.close(() => (port ? resolve(port) : reject(new Error('no free port'))));
    });
  });
}

/** The HTTP status of a GET, or 0 when nothing answers. */
function httpStatus(url: string): Promise<number> {
  return new Promise((resolve) => {
    const request = http.get(url, { timeout: 2_000 }, (response) => {
      response.resume();
      resolve(response.statusCode ?? 0);
    });
    request.on('timeout', () => request.destroy());
    request.on('error', () => resolve(0));
  });
}

async function startNotebookServer(notebookDir: string, stateDir: string): Promise<NotebookServer> {
  const port = await freePort();
  const token = randomBytes(16).toString('hex');
  const base = `http://127.0.0.1:${port}`;
  fs.mkdirSync(path.join(stateDir, 'runtime'), { recursive: true });
  fs.mkdirSync(path.join(stateDir, 'config'), { recursive: true });
  const env = {
    ...process.env,
    PATH: `${path.join(REPO_ROOT, 'node_modules', '.bin')}:${process.env.PATH ?? ''}`,
    JUPYTER_PATH: path.join(REPO_ROOT, 'jupyter'), // the boat-typescript kernelspec
    JUPYTER_RUNTIME_DIR: path.join(stateDir, 'runtime'),
    JUPYTER_CONFIG_DIR: path.join(stateDir, 'config'), // no user configuration
  };
  const args = [
    '-m',
    'notebook',
    '--no-browser',
    '--ip=127.0.0.1',
    `--port=${port}`,
    '--port-retries=0',
    `--NotebookApp.token=${token}`,
    `--notebook-dir=${notebookDir}`,
    '--allow-root',
  ];
  const child = spawn(JUPYTER_PYTHON, args, { env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  const log = tailOf([child.stdout, child.stderr]);
  const stop = async (): Promise<void> => {
    // SIGTERM lets the server shut its kernels down (they run in sessions of their own).
    signalGroup(child, 'SIGTERM');
    if (!(await waitForExit(child, 20_000))) signalGroup(child, 'SIGKILL');
    await waitForExit(child, 5_000);
    await waitUntilGone(stateDir, 10_000); // kernels: their connection files are in stateDir/runtime
  };
  const deadline = Date.now() + 60_000;
  while ((await httpStatus(`${base}/api/status?token=${token}`)) !== 200) {
    if (child.exitCode !== null || Date.now() > deadline) {
      await stop();
      throw new Error(`the Notebook server did not come up on ${base}:\n${log()}`);
    }
    await sleep(300);
  }
  return { pageUrl: (notebook) => `${base}/notebooks/${encodeURIComponent(notebook)}.ipynb?token=${token}`, stop };
}

// ---------------------------------------------------------------------------------------------------
// Looking at the charts

interface InkStats {
  width: number;
  height: number;
  /** Largest standard deviation over the R, G and B channels. */
  stdev: number;
  /** Share of pixels with a channel below 200: lines, bars, text. */
  ink: number;
}

async function inkStats(png: Buffer): Promise<InkStats> {
  const { data, info } = await sharp(png).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  const n = info.width * info.height;
  const sum = [0, 0, 0];
  const sumSq = [0, 0, 0];
  let ink = 0;
  for (let p = 0; p < n; p++) {
    let dark = false;
    for (let c = 0; c < 3; c++) {
      const v = data[p * info.channels + c];
      sum[c] += v;
      sumSq[c] += v * v;
      if (v < 200) dark = true;
    }
    if (dark) ink++;
  }
  const stdev = Math.max(...sum.map((s, c) => Math.sqrt(Math.max(0, sumSq[c] / n - (s / n) ** 2))));
  return { width: info.width, height: info.height, stdev, ink: n ? ink / n : 0 };
}

/** Page script: the state of the chart images, `done` once `expected` of them are there and decoded. */
function imagesState(selector: string, expected: number): string {
  return `(() => {
    const images = [...document.querySelectorAll(${JSON.stringify(selector)})];
    const loaded = images.filter((img) => img.complete && img.naturalWidth > 0).length;
    return { done: images.length >= ${expected} && loaded === images.length, count: images.length, loaded, readyState: document.readyState };
  })()`;
}

/** Page script: scrolls image `index` to the middle of the screen, waits two frames, and returns its box in page coordinates. */
function scrollToImage(selector: string, index: number): string {
  return `(async () => {
    const img = document.querySelectorAll(${JSON.stringify(selector)})[${index}];
    img.scrollIntoView({ block: 'center', inline: 'center' });
    await new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve)));
    const box = img.getBoundingClientRect();
    const atCentre = document.elementFromPoint(box.x + box.width / 2, box.y + box.height / 2);
    return {
      x: box.x + window.scrollX, y: box.y + window.scrollY, width: box.width, height: box.height,
      inViewport: box.left >= 0 && box.top >= 0 && box.right <= window.innerWidth + 0.5 && box.bottom <= window.innerHeight + 0.5,
      covered: atCentre === img ? '' : (atCentre ? atCentre.tagName + '.' + atCentre.className : 'nothing'),
    };
  })()`;
}

interface ChartShot {
  file: string;
  stats: InkStats;
}

/** Opens `url`, waits for its chart images and checks each one on screen; screenshots go to `shotsDir`. */
async function checkCharts(
  browser: Browser,
  frontEnd: FrontEnd,
  notebook: string,
  url: string,
  expected: number,
  shotsDir: string,
): Promise<{ shots: ChartShot[]; seconds: number }> {
  const where = `${notebook} in ${frontEnd.name}`;
  const tab = await Tab.open(browser.cdp);
  const look = async (): Promise<{ shots: ChartShot[]; seconds: number }> => {
    const started = Date.now();
    await tab.navigate(url);
    // Leaves a few seconds of the page's budget for the screenshots, so that a slow page gets this (more telling) error.
    const waitBudget = PAGE_TIMEOUT_MS - 5_000 - (Date.now() - started);
    const state = await tab.waitFor(
      imagesState(frontEnd.imageSelector, expected),
      waitBudget,
      `${where}: waiting for ${expected} decoded chart images`,
    );
    assert.equal(
      state.count,
      expected,
      `${where}: ${String(state.count)} PNG chart images on the page, the notebook has ${expected} PNG outputs`,
    );
    const shots: ChartShot[] = [];
    for (let i = 0; i < expected; i++) {
      const which = `${where}, chart image ${i + 1} of ${expected}`;
      const box: unknown = await tab.evaluate(scrollToImage(frontEnd.imageSelector, i));
      if (!isRecord(box)) throw new Error(`${which}: no box`);
      const clip = {
        x: num(box.x, 'x'),
        y: num(box.y, 'y'),
        width: num(box.width, 'width'),
        height: num(box.height, 'height'),
      };
      assert.ok(
        clip.width >= 50 && clip.height >= 50,
        `${which}: shown at ${clip.width}x${clip.height} px, too small to see`,
      );
      assert.equal(box.inViewport, true, `${which}: does not fit on the ${VIEWPORT.width}x${VIEWPORT.height} screen`);
      assert.equal(box.covered, '', `${which}: covered by ${String(box.covered)}`);
      const png = await tab.screenshot(clip);
      const file = path.join(shotsDir, `${notebook}.${frontEnd.slug}.${i + 1}.png`);
      fs.writeFileSync(file, png);
      const stats = await inkStats(png);
      const numbers = `stdev ${stats.stdev.toFixed(1)}, ink ${(stats.ink * 100).toFixed(2)}% of ${stats.width}x${stats.height} px; screenshot ${file}`;
      assert.ok(stats.stdev > MIN_STDEV && stats.ink > MIN_INK, `${which}: looks blank (${numbers})`);
      shots.push({ file, stats });
    }
    return { shots, seconds: (Date.now() - started) / 1000 };
  };
  try {
    return await withTimeout(
      look(),
      PAGE_TIMEOUT_MS,
      `${where}: the page check did not finish within ${PAGE_TIMEOUT_MS / 1000} s (${url})`,
    );
  } finally {
    await tab.close();
  }
}

/** One line for the test log: how long the page took and what each chart looked like. */
function summary(notebook: string, shots: ChartShot[], seconds: number): string {
  const charts = shots.map(
    ({ stats }) =>
      `${stats.width}x${stats.height} px stdev ${stats.stdev.toFixed(0)} ink ${(stats.ink * 100).toFixed(1)}%`,
  );
  return `${notebook}: ${seconds.toFixed(1)} s; ${charts.join('; ')}`;
}

/** A copy of an HTML export where PNG output number `index` (0-based) is replaced by a white PNG of the same size. */
async function withBlankChart(html: string, index: number): Promise<string> {
  // Only <img> outputs: the export's CSS has a PNG data URL of its own.
  const pattern = /<img src="data:image\/png;base64,([A-Za-z0-9+/=\s]+)"/g;
  const match = [...html.matchAll(pattern)][index];
  if (!match || match.index === undefined) throw new Error(`the export has no PNG output number ${index + 1}`);
  const { width, height } = await sharp(Buffer.from(match[1], 'base64')).metadata();
  if (!width || !height) throw new Error('cannot read the size of the PNG');
  const white = await sharp({ create: { width, height, channels: 3, background: '#ffffff' } })
    .png()
    .toBuffer();
  return (
    html.slice(0, match.index) +
    `<img src="data:image/png;base64,${white.toString('base64')}"` +
    html.slice(match.index + match[0].length)
  );
}

// ---------------------------------------------------------------------------------------------------

describe('charts of executed notebooks are visible in a browser', { skip: skipUnlessCi(skipReason) }, () => {
  let work = '';
  let out = '';
  let shotsDir = '';
  const expected = new Map<string, number>();

  before(() => {
    work = tempDir('boat-shots-');
    out = path.join(work, 'run');
    shotsDir = path.join(work, 'screenshots');
    fs.mkdirSync(shotsDir, { recursive: true });
    process.env.BOAT_DATA_ROOT = path.join(work, 'data');
    process.env.BOAT_MODELS = path.join(work, 'models');
    process.env.BOAT_DEMO_PER_CLASS = '6';
    process.env.BOAT_EPOCHS = '2';
    process.env.BOAT_CACHE_DIR = path.join(work, 'cache');
    const r = runCli(['notebooks', '--out', out, '--only', '01,04']);
    assert.equal(r.status, 0, r.stderr + r.stdout);
    for (const n of NOTEBOOKS) {
      expected.set(n, pngOutputCount(path.join(out, `${n}.ipynb`)));
      assert.ok(fs.existsSync(path.join(out, `${n}.html`)), `${n}.html`);
    }
    assert.deepEqual(Object.fromEntries(expected), { '01-data': 3, '04-feature-extractor': 2 });
  });

  after(() => {
    if (work) killProcessesMentioning(work); // each test checks that nothing was left; this only cleans up after a failure
  });

  test('Jupyter Notebook 6 shows every PNG chart of the saved notebooks', async (t) => {
    // Opening a notebook page starts a kernel (it runs no cell); stopping the server shuts the kernels down.
    const server = await startNotebookServer(out, path.join(work, 'jupyter'));
    try {
      const browser = await launchChromium(path.join(work, 'chromium-notebook6'));
      try {
        for (const n of NOTEBOOKS) {
          const { shots, seconds } = await checkCharts(
            browser,
            NOTEBOOK6,
            n,
            server.pageUrl(n),
            expected.get(n) ?? 0,
            shotsDir,
          );
          t.diagnostic(summary(n, shots, seconds));
        }
      } finally {
        await browser.close();
      }
    } finally {
      await server.stop();
    }
    assert.deepEqual(processesMentioning(work), [], 'the Notebook server, its kernels and Chromium have all ended');
  });

  test('the nbconvert HTML export shows every PNG chart', async (t) => {
    const browser = await launchChromium(path.join(work, 'chromium-html'));
    try {
      for (const n of NOTEBOOKS) {
        const { shots, seconds } = await checkCharts(
          browser,
          HTML_EXPORT,
          n,
          pathToFileURL(path.join(out, `${n}.html`)).href,
          expected.get(n) ?? 0,
          shotsDir,
        );
        t.diagnostic(summary(n, shots, seconds));
      }
    } finally {
      await browser.close();
    }
    assert.deepEqual(processesMentioning(work), [], 'Chromium has ended');
  });

  test('a chart that is blank on screen is caught, naming notebook, front end and image', async () => {
    const blankDir = path.join(work, 'blank');
    fs.mkdirSync(blankDir, { recursive: true });
    const file = path.join(blankDir, '01-data.html');
    fs.writeFileSync(file, await withBlankChart(fs.readFileSync(path.join(out, '01-data.html'), 'utf8'), 1)); // the second chart
    const browser = await launchChromium(path.join(work, 'chromium-blank'));
    try {
      const check = checkCharts(
        browser,
        HTML_EXPORT,
        '01-data',
        pathToFileURL(file).href,
        expected.get('01-data') ?? 0,
        blankDir,
      );
      await assert.rejects(
        check,
        /^AssertionError \[ERR_ASSERTION\]: 01-data in nbconvert HTML export, chart image 2 of 3: looks blank \(stdev 0\.0, ink 0\.00%/,
      );
    } finally {
      await browser.close();
    }
    assert.ok(
      fs.existsSync(path.join(blankDir, '01-data.html.1.png')),
      'chart 1 was checked (and passed) before chart 2 failed',
    );
  });
});
