#!/usr/bin/env node
// Builds the native kernels addon (native/boat_native.cc → native/build/boat_native.node) with g++
// against Debian's oneDNN (libdnnl-dev) and the Node-API headers from npm (node-api-headers), so no
// node-gyp header download is needed. Runs from `npm install` ("prepare") and scripts/run.sh.
//
//   node scripts/build-native.js            build when the source or flags changed; when it cannot
//                                           build, say why and exit 0 (wasm then computes everything)
//   node scripts/build-native.js --require  the same, but exit 1 when it cannot build
//   node scripts/build-native.js --force    rebuild even when up to date
'use strict';
const { execFileSync, spawnSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const source = path.join(root, 'native', 'boat_native.cc');
const outDir = path.join(root, 'native', 'build');
const output = path.join(outDir, 'boat_native.node');
const stamp = path.join(outDir, 'boat_native.sha256');
const args = new Set(process.argv.slice(2));

function say(line) {
  process.stdout.write(`[native] ${line}\n`);
}

function giveUp(reason) {
  say(`not built: ${reason}. The wasm backend computes everything without it (slower); see README, "Native kernels".`);
  process.exit(args.has('--require') ? 1 : 0);
}

function nodeApiInclude() {
  try {
    return require('node-api-headers').include_dir;
  } catch {
    const beside = path.join(path.dirname(process.execPath), '..', 'include', 'node');
    return fs.existsSync(path.join(beside, 'node_api.h')) ? beside : null;
  }
}

function oneDnnInclude() {
  for (const dir of ['/usr/include', '/usr/local/include']) {
    if (fs.existsSync(path.join(dir, 'oneapi', 'dnnl', 'dnnl.hpp'))) return dir;
  }
  return null;
}

const compiler = process.env.CXX || 'g++';
if (spawnSync(compiler, ['--version'], { stdio: 'ignore' }).status !== 0) giveUp(`no C++ compiler (${compiler}); apt-get install g++`);
const napi = nodeApiInclude();
if (!napi) giveUp('no Node-API headers (npm package node-api-headers)');
const dnnl = oneDnnInclude();
if (!dnnl) giveUp('oneDNN headers not found; apt-get install libdnnl-dev');

const flags = ['-std=c++17', '-O3', '-shared', '-fPIC', '-fopenmp', '-DNODE_GYP_MODULE_NAME=boat_native', `-I${napi}`, `-I${dnnl}`];
const want = crypto.createHash('sha256').update(fs.readFileSync(source)).update(JSON.stringify([compiler, flags])).digest('hex');
if (!args.has('--force') && fs.existsSync(output) && fs.existsSync(stamp) && fs.readFileSync(stamp, 'utf8').trim() === want) {
  process.exit(0);
}

fs.mkdirSync(outDir, { recursive: true });
const temp = path.join(outDir, `boat_native.${process.pid}.tmp.node`); // .node: require() picks the loader by extension
say(`${compiler} ${path.relative(root, source)} (oneDNN from ${dnnl})`);
try {
  execFileSync(compiler, [...flags, source, '-ldnnl', '-o', temp], { stdio: ['ignore', 'inherit', 'pipe'] });
} catch (err) {
  fs.rmSync(temp, { force: true });
  const detail = String(err.stderr || err.message).trim().split('\n').slice(-3).join(' | ');
  giveUp(`compile failed: ${detail}`);
}
// Load it once in a child process: a library missing at run time (libdnnl.so.2) shows up here.
const check = spawnSync(process.execPath, ['-e', `require(${JSON.stringify(temp)}).describe()`], { encoding: 'utf8' });
if (check.status !== 0) {
  fs.rmSync(temp, { force: true });
  giveUp(`built but does not load: ${(check.stderr || '').trim().split('\n')[0]}`);
}
fs.renameSync(temp, output);
fs.writeFileSync(stamp, `${want}\n`);
say(`built ${path.relative(root, output)}`);
