// Builds the dashboard into dist/: app.js and app.css (src/main.js and
// the CSS it imports, uPlot's included), index.html and the icon.
// The output depends only on the sources and the locked packages, so CI
// can build again and compare with the committed dist/.

import { build } from 'esbuild';
import { copyFile, mkdir, readFile, readdir, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const src = join(here, 'src');
const dist = join(here, 'dist');
const STATIC = ['index.html', 'favicon.svg'];

// uPlot's MIT licence asks for its notice in copies; its sources keep it
// in a comment the minifier drops, so the bundles carry it up front.
const uplot = JSON.parse(await readFile(join(here, 'node_modules/uplot/package.json'), 'utf8'));
const copyright = /^Copyright .*$/m.exec(await readFile(join(here, 'node_modules/uplot/LICENSE'), 'utf8'));
const notice = `/*! apimeter dashboard. Includes uPlot ${uplot.version}, ${copyright ? copyright[0] : 'by Leon Sorokin'}, MIT License. */`;

// Start from an empty dist/ so no file of an older build lingers.
await mkdir(dist, { recursive: true });
for (const name of await readdir(dist)) {
  await rm(join(dist, name), { recursive: true, force: true });
}

await build({
  absWorkingDir: here,
  entryPoints: { app: join(src, 'main.js') },
  outdir: dist,
  bundle: true,
  format: 'iife',
  platform: 'browser',
  target: ['chrome100', 'edge100', 'firefox100', 'safari15.4'],
  minify: true,
  sourcemap: false,
  charset: 'utf8',
  legalComments: 'eof',
  banner: { js: notice, css: notice },
  logLevel: 'warning',
});

for (const name of STATIC) {
  await copyFile(join(src, name), join(dist, name));
}
