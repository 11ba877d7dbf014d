// Builds the JupyterLab 3.6 front end from npm packages into build/: bundle.js (the application),
// style.js, schemas/ and themes/ (copied and compiled from each extension's schema/ and style/ folders
// by @jupyterlab/builder's ensureAssets). main.py serves that folder with jupyterlab_server.
const fs = require('fs');
const path = require('path');
const { merge } = require('webpack-merge');
const { Build } = require('@jupyterlab/builder');
const baseConfig = require('@jupyterlab/builder/lib/webpack.config.base');

const { extensions } = require('./package.json').jupyterlab;
const buildDir = path.resolve(__dirname, 'build');
fs.rmSync(buildDir, { recursive: true, force: true });
fs.mkdirSync(buildDir, { recursive: true });

// Writes build/style.js and build/schemas/; returns one webpack config per theme (build/themes/).
const themeConfigs = Build.ensureAssets({ packageNames: extensions, output: buildDir });

module.exports = [
  merge(baseConfig, {
    // Development mode without source maps: minifying ~10 MB with terser triples the build time on a
    // small machine, and the bundle is served from localhost only.
    mode: 'development',
    devtool: false,
    entry: './index.js',
    output: { path: buildDir, filename: 'bundle.js', chunkFilename: '[name].bundle.js', publicPath: 'auto' },
    performance: { hints: false },
    stats: 'errors-warnings',
  }),
  ...themeConfigs.map((config) => ({ ...config, stats: 'errors-warnings' })),
];
