#!/usr/bin/env node
'use strict';
// The `boat` CLI. The TypeScript sources are compiled to dist/ by `npm install` (the "prepare" script).
const path = require('node:path');
let cli;
try {
  cli = require(path.join(__dirname, '..', 'dist', 'lib', 'cli', 'main.js'));
} catch (err) {
  if (err && err.code === 'MODULE_NOT_FOUND') {
    console.error(
      'boat: error: the library is not built; run `npm install` (or `npm run build`) in ' +
        path.resolve(__dirname, '..'),
    );
    process.exit(1);
  }
  throw err;
}
cli.main(process.argv.slice(2)).then((code) => process.exit(code));
