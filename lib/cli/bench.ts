/**
 * `boat bench`: the project's speed numbers, measured in one run so that ratios compare like with like.
 * This first part measures the image loader; model and training benchmarks join it as they land.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { benchLoader } from '../bench/loader';
import { makeDemoDataset } from '../data';
import { writeJsonAtomic } from '../util';
import { parseFlags, stringFlag } from './args';

const SHARED_PHOTOS = path.resolve(__dirname, '..', '..', '..', '..', 'shared', 'data', 'boat-types');

export async function benchCommand(argv: string[]): Promise<void> {
  const { flags } = parseFlags(argv, { json: { type: 'string' }, quick: { type: 'boolean', default: false }, data: { type: 'string' } });
  const quick = flags.quick === true;
  let data = stringFlag(flags, 'data');
  let source: string;
  if (data) source = `${path.resolve(data)} (given)`;
  else if (fs.existsSync(SHARED_PHOTOS)) {
    data = SHARED_PHOTOS;
    source = `${data} (real photos, 1280 px)`;
  } else {
    data = path.join(os.tmpdir(), `boat-bench-demo-${process.pid}`);
    await makeDemoDataset({ out: data, perClass: quick ? 40 : 100, seed: 0, minWidth: 1280, maxWidth: 1280 });
    source = `${data} (SYNTHETIC demo set at 1280 px: no real photos found at ${SHARED_PHOTOS})`;
  }
  const started = Date.now();
  console.log(`boat bench${quick ? ' --quick' : ''}: ${os.cpus().length} cores, Node ${process.version}`);
  console.log(`Images: ${source}`);
  const loader = await benchLoader(data, quick ? 320 : 1200);
  const peakRssMb = process.resourceUsage().maxRSS / 1024;
  const rows: Array<[string, string]> = [
    ['images measured', String(loader.images)],
    ['concurrency', String(loader.concurrency)],
    ['plain sharp decode+resize+crop (limit)', `${loader.plain_sharp_img_s.toFixed(1)} img/s`],
    ['loader, eval transforms', `${loader.loader_eval_img_s.toFixed(1)} img/s (${ratio(loader.loader_eval_img_s, loader.plain_sharp_img_s)} of the limit; target 200)`],
    ['loader, train transforms', `${loader.loader_train_img_s.toFixed(1)} img/s (${ratio(loader.loader_train_img_s, loader.plain_sharp_img_s)} of the limit; target 150)`],
    ['prefetch: wait share with a busy consumer', `${(100 * loader.prefetch_wait_fraction).toFixed(1)}% of wall time`],
    ['prefetch: wall / (decode + consumer)', `${loader.prefetch_overlap_ratio.toFixed(2)} (0.5 = full overlap, 1 = none)`],
    ['peak RSS', `${peakRssMb.toFixed(0)} MB`],
  ];
  const width = Math.max(...rows.map(([k]) => k.length));
  for (const [k, v] of rows) console.log(`  ${k.padEnd(width)}  ${v}`);
  console.log(`Took ${((Date.now() - started) / 1000).toFixed(0)} s.`);
  const json = stringFlag(flags, 'json');
  if (json) {
    writeJsonAtomic(json, {
      backend: 'none (loader only)',
      threads: os.cpus().length,
      images_source: source,
      loader_images: loader.images,
      loader_concurrency: loader.concurrency,
      loader_plain_sharp_img_s: loader.plain_sharp_img_s,
      loader_eval_img_s: loader.loader_eval_img_s,
      loader_train_img_s: loader.loader_train_img_s,
      loader_prefetch_wait_fraction: loader.prefetch_wait_fraction,
      loader_prefetch_overlap_ratio: loader.prefetch_overlap_ratio,
      peak_rss_mb: peakRssMb,
    });
    console.log(`Wrote ${json}`);
  }
  if (!stringFlag(flags, 'data') && data !== SHARED_PHOTOS) fs.rmSync(data, { recursive: true, force: true });
}

function ratio(a: number, b: number): string {
  return `${((100 * a) / b).toFixed(0)}%`;
}
