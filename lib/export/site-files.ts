/**
 * Where the static page's files come from: the bundle and index.html that `npm run build`
 * (scripts/build-web.js, esbuild) writes to dist/web/, and tfjs' wasm backend binaries from node_modules.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

import { UserError } from '../util';

/** dist/web, next to dist/lib (this file is dist/lib/export/site-files.js). */
export const WEB_BUILD_DIR = path.resolve(__dirname, '..', '..', 'web');
export const PAGE_FILES = ['index.html', 'boat-web.js', 'boat-web.js.LEGAL.txt'];
/** The page loads the wasm binaries from here (setWasmPaths), relative to index.html. */
export const WASM_DIR = 'wasm';

export function pageFiles(): Array<{ from: string; to: string }> {
  const files = PAGE_FILES.map((f) => ({ from: path.join(WEB_BUILD_DIR, f), to: f }));
  const missing = files.find((f) => !fs.existsSync(f.from));
  if (missing) throw new UserError(`the web page is not built (${missing.from} is missing); run npm run build`);
  const wasmDist = path.join(path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json')), 'dist');
  const wasm = fs.readdirSync(wasmDist).filter((f) => f.endsWith('.wasm'));
  if (wasm.length === 0) throw new UserError(`no .wasm files in ${wasmDist}; reinstall with npm ci`);
  return [...files, ...wasm.sort().map((f) => ({ from: path.join(wasmDist, f), to: `${WASM_DIR}/${f}` }))];
}
