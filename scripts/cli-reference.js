#!/usr/bin/env node
// Prints docs/cli.md, the CLI reference, from the commander specs in lib/cli/ (build first: npm run build).
//   node scripts/cli-reference.js > docs/cli.md
'use strict';
const path = require('node:path');
const dist = path.join(__dirname, '..', 'dist', 'lib', 'cli');
const { buildProgram } = require(path.join(dist, 'main.js'));
const { cliReference } = require(path.join(dist, 'reference.js'));
process.stdout.write(cliReference(buildProgram()));
