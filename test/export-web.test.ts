// boat export end to end in a real browser: a model trained on the demo set (64 px) is exported,
// served with `boat serve`, and opened in Debian's Chromium (headless, driven by playwright-core,
// nothing downloaded). The page's answers must be `boat predict`'s, on the wasm and on the WebGL
// (SwiftShader) backends, through ?image= and through the file input; float16 must keep top-1.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { chromium, type Browser, type Page } from 'playwright-core';
import sharp from 'sharp';

import { evalTransforms, openImage, Random, setJpegExact } from '../lib';
import { REPO_ROOT, runCli, tempDir } from './helpers';

const CHROMIUM = '/usr/bin/chromium';
const skipReason = fs.existsSync(CHROMIUM)
  ? false
  : `${CHROMIUM} is not installed; bash scripts/run.sh setup installs it`;
if (skipReason && process.env.CI === 'true') throw new Error(`CI: ${skipReason}`);

const INPUT = 64;
const PAGE_TIMEOUT_MS = 240_000;
// SwiftShader, Chromium's CPU renderer, gives headless Chromium both WebGL (through ANGLE) and WebGPU (through Vulkan).
const BROWSER_ARGS = [
  '--no-sandbox',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--use-angle=swiftshader',
  '--enable-unsafe-swiftshader',
  '--enable-unsafe-webgpu',
  '--enable-features=Vulkan',
  '--use-webgpu-adapter=swiftshader',
];
const FIXTURES = path.join(REPO_ROOT, 'test', 'fixtures', 'photos');
const WIDTHS = [
  ['desktop', { width: 1280, height: 900 }],
  ['phone', { width: 390, height: 844 }],
] as const;
const work = tempDir('boat-export-web-');
const photosDir = path.join(work, 'photos');
const screenshotDir = process.env.BOAT_SCREENSHOT_DIR ?? path.join(work, 'screenshots');

interface Top {
  class: string;
  probability: number;
}
type Predictions = Map<string, Top[]>;

let browser: Browser;
let photoServer: http.Server;
let photoBase = '';
const servers: Array<{ child: ChildProcess; url: string }> = [];
let photos: string[] = [];
let nodeSource: Predictions;
let nodeExport: Predictions;
let nodeDefault: Predictions;

/**
 * `boat predict --json` on every photo. exact: BOAT_JPEG_EXACT=1, JPEG photos resized from every pixel as
 * torchvision does, which the page reproduces; the default shrinks large JPEGs in the DCT domain first.
 */
function predict(model: string, exact = true): Predictions {
  const r = runCli(
    ['predict', '--model', model, '--json', '--top', '5', ...photos.map((p) => path.join(photosDir, p))],
    REPO_ROOT,
    { BOAT_JPEG_EXACT: exact ? '1' : '0' },
  );
  assert.equal(r.status, 0, r.stderr);
  const out = new Map<string, Top[]>();
  for (const row of JSON.parse(r.stdout) as Array<{ file: string; top?: Top[]; error?: string }>) {
    assert.ok(row.top, `${row.file}: ${row.error}`);
    out.set(path.basename(row.file), row.top);
  }
  return out;
}

/** `boat serve DIR --port 0` as a user runs it; resolves with the URL it prints. */
function serve(dir: string): Promise<string> {
  const child = spawn(process.execPath, [path.join(REPO_ROOT, 'bin', 'boat.js'), 'serve', dir, '--port', '0'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return new Promise((resolve, reject) => {
    let text = '';
    child.stdout.on('data', (d) => {
      text += d;
      const m = /Serving .* at (http:\/\/\S+\/)/.exec(text);
      if (m) {
        servers.push({ child, url: m[1] });
        resolve(m[1]);
      }
    });
    child.stderr.on('data', (d) => (text += d));
    child.on('exit', (code) => reject(new Error(`boat serve exited with ${code}: ${text}`)));
  });
}

/** The photos from another origin, with CORS, as a link to someone else's image would be. */
function servePhotos(): Promise<string> {
  photoServer = http.createServer((req, res) => {
    const name = path.basename(decodeURIComponent(req.url ?? ''));
    const file = path.join(photosDir, name);
    if (!photos.includes(name)) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'image/jpeg', 'access-control-allow-origin': '*' });
    res.end(fs.readFileSync(file));
  });
  return new Promise((resolve) =>
    photoServer.listen(0, '127.0.0.1', () =>
      resolve(`http://127.0.0.1:${(photoServer.address() as { port: number }).port}/`),
    ),
  );
}

function rawGet(base: string, p: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const u = new URL(base);
    http
      .get({ host: u.hostname, port: u.port, path: p }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      })
      .on('error', reject);
  });
}

async function openPage(url: string, viewport = { width: 1280, height: 900 }): Promise<Page> {
  const page = await browser.newPage({ viewport });
  page.setDefaultTimeout(PAGE_TIMEOUT_MS);
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(url);
  await page.waitForSelector('#result[data-state="ready"], #result[data-state="done"], #result[data-state="error"]');
  const state = await inPage<string>(page, `document.getElementById('result').dataset.state`);
  assert.notEqual(
    state,
    'error',
    `page failed: ${await inPage<string>(page, `document.getElementById('status').textContent`)} ${errors.join('; ')}`,
  );
  return page;
}

/** Runs a JavaScript expression in the page (strings: the tests compile without DOM types). */
function inPage<T = unknown>(page: Page, expression: string): Promise<T> {
  return page.evaluate<T>(expression);
}

interface Layout {
  overflow: boolean;
  imgLoaded: boolean;
  imgVisible: boolean;
  img: number[];
  barsVisible: boolean[];
  topFill: number[];
  labels: string[];
}

async function waitDone(page: Page): Promise<void> {
  await page.waitForSelector('#result[data-state="done"]');
}

/** Every card on the page: file name → its top classes. */
async function cards(page: Page): Promise<Map<string, Top[]>> {
  const rows = await inPage<string[][]>(
    page,
    `Array.from(document.querySelectorAll('article.card'), (e) => [e.dataset.name ?? '', e.dataset.top ?? '', e.dataset.error ?? ''])`,
  );
  const out = new Map<string, Top[]>();
  for (const [name, top, error] of rows) {
    assert.equal(error, '', `${name}: ${error}`);
    out.set(path.basename(name), JSON.parse(top) as Top[]);
  }
  return out;
}

/** top-1 equal and each of the page's top-3 probabilities within `tolerance` of Node's for that class. */
function compare(page: Map<string, Top[]>, node: Predictions, tolerance: number): { agree: number; worst: number } {
  let agree = 0;
  let worst = 0;
  for (const [name, top] of page) {
    const expected = node.get(name)!;
    if (top[0].class === expected[0].class) agree++;
    for (const t of top)
      worst = Math.max(worst, Math.abs(t.probability - expected.find((e) => e.class === t.class)!.probability));
  }
  if (tolerance < 1) {
    for (const [name, top] of page)
      assert.equal(
        top[0].class,
        node.get(name)![0].class,
        `${name}: page top-1 ${top[0].class}, boat predict ${node.get(name)![0].class}`,
      );
    assert.ok(worst <= tolerance, `probabilities differ by up to ${worst.toFixed(4)}`);
  }
  return { agree, worst };
}

describe('boat export in Chromium', { skip: skipReason }, () => {
  before(async () => {
    const data = path.join(work, 'data');
    assert.equal(
      runCli(['data', 'demo', '--out', path.join(data, 'boats'), '--per-class', '6', '--seed', '1']).status,
      0,
    );
    assert.equal(runCli(['data', 'split', '--data', path.join(data, 'boats'), '--out', data]).status, 0);
    const train = runCli([
      'train',
      '--mode',
      'feature-extractor',
      '--data',
      data,
      '--out',
      path.join(work, 'models', 'fe'),
      '--epochs',
      '1',
      '--batch-size',
      '6',
      '--lr',
      '0.001',
      '--seed',
      '7',
      '--input-size',
      String(INPUT),
      '--cache',
      path.join(work, 'cache'),
    ]);
    assert.equal(train.status, 0, train.stderr);
    for (const [q, out] of [
      ['none', 'fe'],
      ['float16', 'fe16'],
    ]) {
      const r = runCli([
        'export',
        '--model',
        path.join(work, 'models', 'fe'),
        '--out',
        path.join(work, 'web', out),
        '--quantize',
        q,
      ]);
      assert.equal(r.status, 0, r.stderr);
    }
    // The photos: the three fixture photos and every demo test image, in one flat folder.
    fs.mkdirSync(photosDir);
    for (const f of fs.readdirSync(FIXTURES)) fs.copyFileSync(path.join(FIXTURES, f), path.join(photosDir, f));
    for (const cls of fs
      .readdirSync(path.join(data, 'test'))
      .filter((c) => fs.statSync(path.join(data, 'test', c)).isDirectory())) {
      for (const f of fs.readdirSync(path.join(data, 'test', cls)))
        fs.copyFileSync(path.join(data, 'test', cls, f), path.join(photosDir, `${cls}-${f}`));
    }
    photos = fs.readdirSync(photosDir).sort();
    nodeSource = predict(path.join(work, 'models', 'fe'));
    nodeExport = predict(path.join(work, 'web', 'fe'));
    nodeDefault = predict(path.join(work, 'models', 'fe'), false);
    setJpegExact(true);
    photoBase = await servePhotos();
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: BROWSER_ARGS });
  });

  after(async () => {
    await browser?.close();
    photoServer?.close();
    for (const s of servers) s.child.kill('SIGTERM');
  });

  test('boat predict on the exported folder matches boat predict on the source model', () => {
    assert.ok(photos.length >= 8, `${photos.length} photos`);
    for (const [name, top] of nodeSource) {
      const e = nodeExport.get(name)!;
      assert.deepEqual(
        e.map((t) => t.class),
        top.map((t) => t.class),
        name,
      );
      for (let i = 0; i < top.length; i++)
        assert.ok(
          Math.abs(e[i].probability - top[i].probability) < 1e-5,
          `${name}: ${e[i].probability} vs ${top[i].probability}`,
        );
    }
  });

  test('boat serve serves the export and refuses ../ paths', async () => {
    const url = await serve(path.join(work, 'web', 'fe'));
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/$/);
    assert.equal(await rawGet(url, '/boat.json'), 200);
    for (const bad of [
      '/../models/fe/metadata.json',
      '/model/../../models/fe/metadata.json',
      '/%2e%2e/models/fe/metadata.json',
      '/..%2fmodels%2ffe%2fmetadata.json',
    ]) {
      assert.equal(await rawGet(url, bad), 403, bad);
    }
  });

  for (const backend of ['wasm', 'webgl', 'webgpu']) {
    test(
      `the page on ${backend}: ?image= and the file input give boat predict's top-1, probabilities within 0.02`,
      { timeout: PAGE_TIMEOUT_MS * 2 },
      async (t) => {
        const url = servers[0]?.url ?? (await serve(path.join(work, 'web', 'fe')));
        const first = photos[0];
        const page = await openPage(
          `${url}index.html?backend=${backend}&image=${encodeURIComponent(photoBase + first)}`,
        );
        await waitDone(page);
        const result = await inPage<Record<string, string>>(page, `({ ...document.getElementById('result').dataset })`);
        assert.equal(result.backend, backend);
        assert.equal(result.top1, nodeSource.get(first)![0].class, `?image=${first}`);
        assert.ok(
          Math.abs(Number(result.prob) - nodeSource.get(first)![0].probability) <= 0.02,
          `?image= probability ${result.prob} vs ${nodeSource.get(first)![0].probability}`,
        );
        assert.match((await page.textContent('#status')) ?? '', new RegExp(`backend: ${backend}`));

        await page.setInputFiles(
          '#file',
          photos.map((p) => path.join(photosDir, p)),
        );
        await page.waitForFunction(
          `document.querySelectorAll('article.card[data-top], article.card[data-error]').length === ${photos.length + 1} && document.getElementById('result').dataset.state === 'done'`,
        );
        const shown = await cards(page);
        assert.equal(shown.size, photos.length);
        const { worst } = compare(shown, nodeSource, 0.02);
        const shrunk = compare(shown, nodeDefault, 1);

        // The pixels the page feeds the model against the library's eval transforms on the same photo.
        let sum = 0;
        let count = 0;
        let max = 0;
        for (const p of photos) {
          const rgb = await inPage<number[]>(page, `window.boat.cropPixels(${JSON.stringify(photoBase + p)})`);
          const view = await evalTransforms('caffe', INPUT).preview(
            await openImage(path.join(photosDir, p)),
            new Random(0),
          );
          assert.equal(rgb.length, view.data.length);
          for (let i = 0; i < view.data.length / 3; i++) {
            for (let c = 0; c < 3; c++) {
              const d = Math.abs(rgb[i * 3 + c] - view.data[i * 3 + c]);
              sum += d;
              max = Math.max(max, d);
              count++;
            }
          }
        }
        // Same decoder family (libjpeg-turbo) and the same resampling arithmetic: equal up to a decoder's rounding.
        assert.ok(max <= 2, `input pixels differ from the library's by up to ${max} levels (mean ${sum / count})`);
        t.diagnostic(
          `${backend}: ${photos.length} photos, largest probability difference ${worst.toFixed(6)}; input pixels differ from the library's by ${(sum / count).toFixed(4)} levels on average (largest ${max})`,
        );
        t.diagnostic(
          `${backend}: against boat predict's default JPEG shrink-on-load: top-1 agrees on ${shrunk.agree} of ${photos.length}, probabilities differ by up to ${shrunk.worst.toFixed(4)}`,
        );

        const before = await inPage<number>(page, 'window.boat.numTensors()');
        await inPage(page, `window.boat.classifyUrl(${JSON.stringify(photoBase + first)})`);
        assert.equal(await inPage<number>(page, 'window.boat.numTensors()'), before, 'classifying leaves no tensors');
        await page.close();
      },
    );
  }

  test(
    'float16 export: top-1 agrees with the unquantized model on at least 95% of the photos; a dropped photo is classified too',
    { timeout: PAGE_TIMEOUT_MS },
    async (t) => {
      const url = await serve(path.join(work, 'web', 'fe16'));
      const page = await openPage(`${url}index.html?backend=wasm`);
      assert.match((await page.textContent('#status')) ?? '', /float16 weights/);
      await page.setInputFiles(
        '#file',
        photos.map((p) => path.join(photosDir, p)),
      );
      await page.waitForFunction(
        `document.querySelectorAll('article.card[data-top], article.card[data-error]').length === ${photos.length}`,
      );
      const { agree, worst } = compare(await cards(page), nodeSource, 1);
      t.diagnostic(
        `float16: top-1 agrees on ${agree} of ${photos.length}; largest probability difference ${worst.toFixed(4)}`,
      );
      assert.ok(agree >= 0.95 * photos.length, `${agree} of ${photos.length}`);
      // A photo dropped on the drop zone is classified like an opened one.
      const dropped = photos[photos.length - 1];
      await inPage(
        page,
        `(async () => {
      const blob = await (await fetch(${JSON.stringify(photoBase + dropped)})).blob();
      const dt = new DataTransfer();
      dt.items.add(new File([blob], ${JSON.stringify('dropped-' + dropped)}, { type: blob.type }));
      document.getElementById('drop').dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
    })()`,
      );
      await page.waitForFunction(
        `document.querySelectorAll('article.card[data-top]').length === ${photos.length + 1} && document.getElementById('result').dataset.state === 'done'`,
      );
      const result = await inPage<Record<string, string>>(page, `({ ...document.getElementById('result').dataset })`);
      assert.equal(result.source, `dropped-${dropped}`);
      assert.equal(result.top1, (await cards(page)).get(dropped)![0].class);
      await page.close();
    },
  );

  test('without a WebGPU adapter the page falls back to webgl, and says so', { timeout: PAGE_TIMEOUT_MS }, async () => {
    const glOnly = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: BROWSER_ARGS.filter((a) => !/webgpu|Vulkan/i.test(a)),
    });
    try {
      const page = await glOnly.newPage();
      page.setDefaultTimeout(PAGE_TIMEOUT_MS);
      await page.goto(`${servers[0].url}index.html`);
      await page.waitForSelector('#result[data-state="ready"], #result[data-state="error"]');
      assert.equal(await inPage<string>(page, `document.getElementById('result').dataset.backend`), 'webgl');
      assert.match((await page.textContent('#status')) ?? '', /backend: webgl$/);
    } finally {
      await glOnly.close();
    }
  });

  test(
    'at desktop (1280 px) and phone (390 px) widths: the photo and the bars are on screen, not covered, and drawn',
    { timeout: PAGE_TIMEOUT_MS },
    async (t) => {
      // No ?backend: the page picks webgpu, webgl or wasm itself and says which. One page, resized: the
      // layout is CSS's, and loading the model twice on SwiftShader's WebGPU would add half a minute.
      const page = await openPage(
        `${servers[0].url}index.html?image=${encodeURIComponent(photoBase + 'coffee.jpg')}`,
        WIDTHS[0][1],
      );
      await waitDone(page);
      const backend = await inPage<string>(page, `document.getElementById('result').dataset.backend`);
      assert.ok(['webgpu', 'webgl', 'wasm'].includes(backend ?? ''), `backend ${backend}`);
      assert.match((await page.textContent('#status')) ?? '', new RegExp(`backend: ${backend}$`));
      for (const [label, viewport] of WIDTHS) {
        await page.setViewportSize(viewport);
        await inPage(page, 'new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))');
        const layout = await inPage<Layout>(
          page,
          `(() => {
        const card = document.querySelector('article.card');
        const visible = (el) => {
          const r = el.getBoundingClientRect();
          const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
          return r.width > 0 && r.height > 0 && r.left >= 0 && r.right <= innerWidth && r.bottom <= innerHeight && hit !== null && (hit === el || el.contains(hit));
        };
        const rect = (el) => { const r = el.getBoundingClientRect(); return [r.left, r.top, r.width, r.height]; };
        const img = card.querySelector('img');
        const bars = Array.from(card.querySelectorAll('.bar'));
        return {
          overflow: document.documentElement.scrollWidth > innerWidth,
          imgLoaded: img.complete && img.naturalWidth > 0,
          imgVisible: visible(img),
          img: rect(img),
          barsVisible: bars.map((b) => visible(b.querySelector('.track')) && visible(b.querySelector('.label')) && visible(b.querySelector('.pct'))),
          topFill: rect(bars[0].querySelector('.fill')),
          labels: bars.map((b) => b.querySelector('.label').textContent),
        };
      })()`,
        );
        assert.equal(layout.overflow, false, 'no horizontal scrolling');
        assert.ok(layout.imgLoaded && layout.imgVisible, `photo not visible: ${JSON.stringify(layout.img)}`);
        assert.deepEqual(
          layout.barsVisible,
          [true, true, true],
          'each of the three bars shows its label, track and percentage',
        );
        assert.equal(layout.labels[0], nodeSource.get('coffee.jpg')![0].class);
        fs.mkdirSync(screenshotDir, { recursive: true });
        const file = path.join(screenshotDir, `export-${label}.png`);
        await page.screenshot({ path: file });
        // Drawn, not just laid out: the photo's box has picture detail, the top bar its green fill.
        const [x, y, w, h] = layout.img.map(Math.round);
        const photoStats = await sharp(file).extract({ left: x, top: y, width: w, height: h }).stats();
        assert.ok(
          Math.max(...photoStats.channels.map((c) => c.stdev)) > 20,
          `photo area is flat (stdev ${photoStats.channels.map((c) => c.stdev.toFixed(1))})`,
        );
        const [fx, fy, fw, fh] = layout.topFill.map(Math.round);
        const fill = await sharp(file)
          .extract({ left: fx, top: fy, width: Math.max(1, fw), height: Math.max(1, fh) })
          .raw()
          .toBuffer();
        let green = 0;
        for (let i = 0; i < fill.length; i += 3)
          if (Math.abs(fill[i] - 0x2f) < 24 && Math.abs(fill[i + 1] - 0x85) < 24 && Math.abs(fill[i + 2] - 0x5a) < 24)
            green++;
        assert.ok(
          green / (fill.length / 3) > 0.5,
          `top bar not drawn in its colour (${green} of ${fill.length / 3} pixels)`,
        );
        t.diagnostic(`${label}: backend ${backend}, screenshot ${file}`);
      }
      await page.close();
    },
  );
});
