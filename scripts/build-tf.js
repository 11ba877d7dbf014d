#!/usr/bin/env node
// Bundles tfjs-core's gradient and chained-op registrations into dist/lib/engine/tf-registrations.js.
// tfjs-core's CommonJS build registers neither (the @tensorflow/tfjs bundle package carries them, with
// 150 MB of browser bundles the project never loads), and their ES module sources cannot be required
// from Node directly. Registries and the engine live on the global object, so the bundled copies
// register into the one engine that lib/engine/tf.ts loads. Run by `npm run build`.
'use strict';
const path = require('node:path');
const esbuild = require('esbuild');

const root = path.resolve(__dirname, '..');
const outfile = path.join(root, 'dist', 'lib', 'engine', 'tf-registrations.js');

esbuild
  .build({
    stdin: {
      contents: [
        "import '@tensorflow/tfjs-core/dist/register_all_gradients';",
        "import '@tensorflow/tfjs-core/dist/public/chained_ops/register_all_chained_ops';",
      ].join('\n'),
      resolveDir: root,
    },
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    outfile,
    logLevel: 'warning',
    // The package entry stays external (Node loads the one copy everything else shares); only the
    // registration modules and what they import are bundled.
    plugins: [
      {
        name: 'tfjs-core-entry-external',
        setup(build) {
          build.onResolve({ filter: /^@tensorflow\/tfjs-core$/ }, (args) => ({ path: args.path, external: true }));
        },
      },
    ],
  })
  .catch(() => process.exit(1));
