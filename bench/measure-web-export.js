#!/usr/bin/env node
'use strict';
// Test accuracy of an exported web folder measured in the browser: serves the export and a test split
// (class folders of photos), opens the page in headless Chromium (Debian's /usr/bin/chromium, driven
// by playwright-core) and classifies every photo through the page's own code (window.boat.classifyUrl).
//
//   node bench/measure-web-export.js --export web/NAME --data data/test [--backend wasm|webgl|webgpu]
//        [--compare DIR/predictions.csv] [--out FILE.csv] [--pixels]
//
// --pixels also compares the pixels the page feeds the model with the library's eval transforms on the
// same photo, on its default JPEG path and on the exact one (BOAT_JPEG_EXACT=1), in 8-bit levels.
//
// --compare takes a `boat evaluate` predictions.csv and reports top-1 agreement and the largest
// difference of the top-1 probability. Needs `npm run build` first.
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const { parseArgs } = require('node:util');

const root = path.resolve(__dirname, '..');
const { chromium } = require('playwright-core');
const { serveFolder } = require(path.join(root, 'dist', 'lib', 'export'));
const { parseCsv, toCsv } = require(path.join(root, 'dist', 'lib', 'util'));
const { evalTransforms, openImage, setJpegExact } = require(path.join(root, 'dist', 'lib', 'images'));
const { Random } = require(path.join(root, 'dist', 'lib', 'util'));

const { values } = parseArgs({
  options: {
    export: { type: 'string' },
    data: { type: 'string' },
    backend: { type: 'string', default: 'wasm' },
    compare: { type: 'string' },
    out: { type: 'string' },
    pixels: { type: 'boolean', default: false },
  },
});
if (!values.export || !values.data) {
  console.error(
    'usage: node bench/measure-web-export.js --export web/NAME --data data/test [--backend wasm] [--compare predictions.csv] [--out FILE.csv]',
  );
  process.exit(2);
}
const data = path.resolve(values.data);
const photos = [];
for (const cls of fs.readdirSync(data).sort()) {
  const dir = path.join(data, cls);
  if (!fs.statSync(dir).isDirectory()) continue;
  for (const f of fs.readdirSync(dir).sort())
    if (/\.(jpe?g|png|webp)$/i.test(f)) photos.push({ cls, rel: `${cls}/${f}`, file: path.join(dir, f) });
}

(async () => {
  const site = await serveFolder({ dir: values.export, port: 0 });
  const byRel = new Map(photos.map((p) => [p.rel, p.file]));
  // The photos come from another origin, with CORS, as a link to someone else's photo would.
  const photoServer = http.createServer((req, res) => {
    const file = byRel.get(decodeURIComponent((req.url || '/').slice(1)));
    if (!file) return res.writeHead(404).end();
    res.writeHead(200, { 'access-control-allow-origin': '*' });
    res.end(fs.readFileSync(file));
  });
  await new Promise((r) => photoServer.listen(0, '127.0.0.1', r));
  const photoBase = `http://127.0.0.1:${photoServer.address().port}/`;
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
      '--use-angle=swiftshader',
      '--enable-unsafe-swiftshader',
    ],
  });
  try {
    const page = await browser.newPage();
    page.setDefaultTimeout(600_000);
    const t0 = Date.now();
    await page.goto(`${site.url}index.html?backend=${encodeURIComponent(values.backend)}`);
    await page.waitForSelector('#result[data-state="ready"], #result[data-state="error"]');
    const status = await page.textContent('#status');
    if ((await page.getAttribute('#result', 'data-state')) === 'error') throw new Error(status);
    const loadSeconds = (Date.now() - t0) / 1000;
    const rows = [];
    const t1 = Date.now();
    const manifest = JSON.parse(fs.readFileSync(path.join(values.export, 'boat.json'), 'utf8'));
    const pixelStats = {
      default: { sum: 0, max: 0, n: 0, worstMean: 0 },
      exact: { sum: 0, max: 0, n: 0, worstMean: 0 },
    };
    let pixelSeconds = 0;
    for (const p of photos) {
      const url = photoBase + p.rel.split('/').map(encodeURIComponent).join('/');
      const top = await page.evaluate(`window.boat.classifyUrl(${JSON.stringify(url)})`);
      rows.push({ file: p.file, actual: p.cls, predicted: top[0].class, probability: top[0].probability });
      if (!values.pixels) continue;
      const t = Date.now();
      const rgb = await page.evaluate(`window.boat.cropPixels(${JSON.stringify(url)})`);
      for (const mode of ['default', 'exact']) {
        setJpegExact(mode === 'exact');
        const view = await evalTransforms(manifest.preprocessing.normalization, manifest.inputSize).preview(
          await openImage(p.file),
          new Random(0),
        );
        const st = pixelStats[mode];
        let sum = 0;
        for (let i = 0; i < rgb.length; i++) {
          const d = Math.abs(rgb[i] - view.data[i]);
          sum += d;
          st.max = Math.max(st.max, d);
        }
        st.sum += sum;
        st.n += rgb.length;
        st.worstMean = Math.max(st.worstMean, sum / rgb.length);
      }
      pixelSeconds += (Date.now() - t) / 1000;
    }
    const seconds = (Date.now() - t1) / 1000 - pixelSeconds;
    const correct = rows.filter((r) => r.actual === r.predicted).length;
    console.log(status);
    console.log(
      `accuracy ${(correct / rows.length).toFixed(4)} (${correct} of ${rows.length}) in the browser; page load ${loadSeconds.toFixed(1)} s, ${((1000 * seconds) / rows.length).toFixed(0)} ms per photo`,
    );
    for (const [mode, st] of Object.entries(values.pixels ? pixelStats : {})) {
      console.log(
        `input pixels against the library's ${mode} JPEG path: mean difference ${(st.sum / st.n).toFixed(3)} levels (worst photo ${st.worstMean.toFixed(3)}, largest ${st.max})`,
      );
    }
    if (values.out)
      fs.writeFileSync(
        values.out,
        toCsv(
          ['file', 'actual', 'predicted', 'probability'],
          rows.map((r) => [r.file, r.actual, r.predicted, r.probability.toFixed(6)]),
        ),
      );
    if (values.compare) {
      const [header, ...lines] = parseCsv(fs.readFileSync(values.compare, 'utf8'));
      const col = (name) => header.indexOf(name);
      const node = new Map(
        lines.map((l) => [
          path.resolve(l[col('file')]),
          { predicted: l[col('predicted')], probability: Number(l[col('probability')]) },
        ]),
      );
      let agree = 0;
      let worst = 0;
      for (const r of rows) {
        const n = node.get(path.resolve(r.file));
        if (!n) throw new Error(`${r.file} is not in ${values.compare}`);
        if (n.predicted === r.predicted) {
          agree++;
          worst = Math.max(worst, Math.abs(n.probability - r.probability));
        }
      }
      console.log(
        `against ${values.compare}: top-1 agrees on ${agree} of ${rows.length}; top-1 probabilities (where they agree) differ by up to ${worst.toFixed(4)}`,
      );
    }
  } finally {
    await browser.close();
    photoServer.close();
    await site.close();
  }
})().catch((err) => {
  console.error(`measure-web-export: ${err.message}`);
  process.exit(1);
});
