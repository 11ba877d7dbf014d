#!/usr/bin/env node
'use strict';
// Builds the page that `boat export` copies into every export: type-checks lib/web/page (DOM types,
// so it has its own tsconfig and the library's tsc skips it), bundles app.ts with tfjs into one
// browser script with esbuild, and copies index.html. Output: dist/web/boat-web.js, dist/web/index.html.
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const page = path.join(root, 'lib', 'web', 'page');
const out = path.join(root, 'dist', 'web');

const check = spawnSync(
  process.execPath,
  [require.resolve('typescript/bin/tsc'), '-p', path.join(page, 'tsconfig.json')],
  { stdio: 'inherit' },
);
if (check.status !== 0) process.exit(check.status ?? 1);

fs.mkdirSync(out, { recursive: true });
require('esbuild').buildSync({
  entryPoints: [path.join(page, 'app.ts')],
  outfile: path.join(out, 'boat-web.js'),
  bundle: true,
  minify: true,
  format: 'iife',
  platform: 'browser',
  target: ['es2020'],
  legalComments: 'linked',
  logLevel: 'warning',
});
fs.copyFileSync(path.join(page, 'index.html'), path.join(out, 'index.html'));
console.log(
  `web page built: ${path.relative(root, out)}/ (boat-web.js ${(fs.statSync(path.join(out, 'boat-web.js')).size / 1e6).toFixed(2)} MB)`,
);
