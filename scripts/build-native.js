#!/usr/bin/env node
// Builds the two native addons with g++ and the Node-API headers from npm (node-api-headers), so no
// node-gyp header download is needed. Runs from `npm install` ("prepare") and scripts/run.sh.
//   native/boat_native.cc → native/build/boat_native.node   convolution and BatchNorm kernels, oneDNN (libdnnl-dev)
//   native/boat_jpeg.cc   → native/build/boat_jpeg.node     JPEG decode + resize for the loader, libjpeg-turbo (libjpeg-dev)
// Each is optional: without it the project runs, slower (wasm computes everything, sharp decodes everything).
//
//   node scripts/build-native.js            build what changed; when an addon cannot build, say why and go on
//   node scripts/build-native.js --require  the same, but exit 1 when one cannot build
//   node scripts/build-native.js --force    rebuild even when up to date
'use strict';
const { execFileSync, spawnSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const outDir = path.join(root, 'native', 'build');
const args = new Set(process.argv.slice(2));
const compiler = process.env.CXX || 'g++';

const ADDONS = [
  {
    name: 'boat_native',
    header: path.join('oneapi', 'dnnl', 'dnnl.hpp'),
    missing: 'oneDNN headers not found; apt-get install libdnnl-dev',
    flags: ['-fopenmp'],
    libs: ['-ldnnl'],
    without: 'the wasm backend computes everything without it (slower); see README, "Native kernels"',
  },
  {
    name: 'boat_jpeg',
    header: 'jpeglib.h',
    missing: 'libjpeg headers not found; apt-get install libjpeg-dev',
    flags: [],
    libs: ['-ljpeg'],
    without: 'sharp decodes every image without it (slower); see README, "Images"',
  },
];

function say(line) {
  process.stdout.write(`[native] ${line}\n`);
}

function nodeApiInclude() {
  try {
    return require('node-api-headers').include_dir;
  } catch {
    const beside = path.join(path.dirname(process.execPath), '..', 'include', 'node');
    return fs.existsSync(path.join(beside, 'node_api.h')) ? beside : null;
  }
}

function includeDirWith(header) {
  for (const dir of [
    '/usr/include',
    '/usr/local/include',
    '/usr/include/x86_64-linux-gnu',
    '/usr/include/aarch64-linux-gnu',
  ]) {
    if (fs.existsSync(path.join(dir, header))) return dir;
  }
  return null;
}

/** Builds one addon; returns null when built or up to date, else why not. */
function build(addon, napi) {
  const include = includeDirWith(addon.header);
  if (!include) return addon.missing;
  const source = path.join(root, 'native', `${addon.name}.cc`);
  const output = path.join(outDir, `${addon.name}.node`);
  const stamp = path.join(outDir, `${addon.name}.sha256`);
  const flags = [
    '-std=c++17',
    '-O3',
    '-shared',
    '-fPIC',
    ...addon.flags,
    `-DNODE_GYP_MODULE_NAME=${addon.name}`,
    `-I${napi}`,
    `-I${include}`,
  ];
  const want = crypto
    .createHash('sha256')
    .update(fs.readFileSync(source))
    .update(JSON.stringify([compiler, flags, addon.libs]))
    .digest('hex');
  if (
    !args.has('--force') &&
    fs.existsSync(output) &&
    fs.existsSync(stamp) &&
    fs.readFileSync(stamp, 'utf8').trim() === want
  )
    return null;

  fs.mkdirSync(outDir, { recursive: true });
  const temp = path.join(outDir, `${addon.name}.${process.pid}.tmp.node`); // .node: require() picks the loader by extension
  say(`${compiler} ${path.relative(root, source)}`);
  try {
    execFileSync(compiler, [...flags, source, ...addon.libs, '-o', temp], { stdio: ['ignore', 'inherit', 'pipe'] });
  } catch (err) {
    fs.rmSync(temp, { force: true });
    return `compile failed: ${String(err.stderr || err.message)
      .trim()
      .split('\n')
      .slice(-3)
      .join(' | ')}`;
  }
  // Load it once in a child process: a library missing at run time (libdnnl.so.2) shows up here.
  const check = spawnSync(process.execPath, ['-e', `require(${JSON.stringify(temp)}).describe()`], {
    encoding: 'utf8',
  });
  if (check.status !== 0) {
    fs.rmSync(temp, { force: true });
    return `built but does not load: ${(check.stderr || '').trim().split('\n')[0]}`;
  }
  fs.renameSync(temp, output);
  fs.writeFileSync(stamp, `${want}\n`);
  say(`built ${path.relative(root, output)}`);
  return null;
}

const napi = nodeApiInclude();
let failed = false;
for (const addon of ADDONS) {
  let reason = null;
  if (spawnSync(compiler, ['--version'], { stdio: 'ignore' }).status !== 0)
    reason = `no C++ compiler (${compiler}); apt-get install g++`;
  else if (!napi) reason = 'no Node-API headers (npm package node-api-headers)';
  else reason = build(addon, napi);
  if (reason) {
    failed = true;
    say(`${addon.name} not built: ${reason}. ${addon.without[0].toUpperCase()}${addon.without.slice(1)}.`);
  }
}
process.exit(failed && args.has('--require') ? 1 : 0);
