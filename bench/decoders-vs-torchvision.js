#!/usr/bin/env node
// How far each decoder's Resize(256) + CenterCrop(224) is from torchvision's on real photos: the JPEG
// addon as the loader uses it (DCT-domain shrink), the addon without the shrink, and sharp.
// Needs Debian's python3-torchvision (references are made with /usr/bin/python3) and a build (npm run build).
//
//   node bench/decoders-vs-torchvision.js [folder of class folders] [photos]
//   (default ../shared/data/boat-types, 24 photos: the first of each class, then the second, ...)
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const lib = require('../dist/lib');
const { scanImageFolder } = require('../dist/lib/data/scan');

const root = process.argv[2] || path.join(__dirname, '..', '..', 'shared', 'data', 'boat-types');
const count = Number(process.argv[3] || 24);
if (!fs.existsSync(root)) {
  console.error(`no photos at ${root}`);
  process.exit(2);
}
if (!lib.jpegAddonActive()) {
  console.error('the JPEG addon is not built (npm run build:native; needs libjpeg-dev)');
  process.exit(2);
}

// Spread the photos over the classes.
const byClass = new Map();
for (const f of scanImageFolder(root).files) byClass.set(f.label, [...(byClass.get(f.label) || []), f.file]);
const files = [];
for (let i = 0; files.length < count && i < 1e6; i++) {
  let added = false;
  for (const list of byClass.values())
    if (i < list.length && files.length < count) (files.push(list[i]), (added = true));
  if (!added) break;
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'boat-tv-'));
const python = `
import sys, numpy as np
from PIL import Image
import torchvision.transforms as T
t = T.Compose([T.Resize(256), T.CenterCrop(224)])
for i, f in enumerate(sys.argv[2:]):
    np.asarray(t(Image.open(f).convert('RGB'))).tofile(f'{sys.argv[1]}/{i}.raw')
`;
const made = spawnSync('/usr/bin/python3', ['-c', python, dir, ...files], { encoding: 'utf8' });
if (made.status !== 0) {
  console.error(`torchvision references failed: ${(made.stderr || '').trim().split('\n').pop()}`);
  process.exit(2);
}

(async () => {
  const ways = {
    'JPEG addon (as the loader runs it)': async (src) => {
      lib.setJpegAddon(true);
      return (await evalCrop(src)).data;
    },
    'JPEG addon without DCT-domain shrink': async (src) => {
      const pending = await new lib.CenterCrop(224).apply(await new lib.Resize(256).apply(src));
      const { geometry } = lib.jpegGeometry(src, pending);
      return require('../native/build/boat_jpeg.node').resizedCropJpeg(src.file, geometry, 1);
    },
    sharp: async (src) => {
      lib.setJpegAddon(false);
      const out = (await evalCrop(src)).data;
      lib.setJpegAddon(true);
      return out;
    },
  };
  const totals = Object.fromEntries(Object.keys(ways).map((k) => [k, { mean: 0, max: 0 }]));
  for (let i = 0; i < files.length; i++) {
    const reference = fs.readFileSync(path.join(dir, `${i}.raw`));
    const src = await lib.openImage(files[i]);
    for (const [name, way] of Object.entries(ways)) {
      const ours = await way(src);
      let sum = 0;
      for (let k = 0; k < reference.length; k++) {
        const d = Math.abs(ours[k] - reference[k]);
        sum += d;
        totals[name].max = Math.max(totals[name].max, d);
      }
      totals[name].mean += sum / reference.length / files.length;
    }
  }
  fs.rmSync(dir, { recursive: true, force: true });
  console.log(
    `Resize(256) + CenterCrop(224) against torchvision (Pillow), ${files.length} photos from ${root}, 8-bit levels:`,
  );
  for (const [name, t] of Object.entries(totals))
    console.log(`  ${name.padEnd(38)} mean |diff| ${t.mean.toFixed(3)}, max ${t.max}`);
})();

function evalCrop(src) {
  return new lib.Compose([new lib.Resize(256), new lib.CenterCrop(224)]).preview(src, new lib.Random(0));
}
