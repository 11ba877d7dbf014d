/**
 * The embedded demo dataset: procedurally drawn boat pictures, so that the whole tutorial and the
 * tests run without downloading anything. The pictures are SYNTHETIC (SVG scenes rendered by sharp
 * and saved as JPEG); they are not photos and results on them say nothing about real boats.
 *
 * Each class has its own silhouette (sail and mast, long thin kayak with paddle, black gondola with
 * raised ends, tall white cruise ship with rows of windows, ferry with a boxy cabin and funnel), drawn
 * at random sizes, positions, colours and directions over varied sky and water, so a classifier has
 * something to learn but not a single pixel to cheat with.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';

import { mapLimit, Random, readOwnedMarker, replaceOwnedDirectory, requireDirectory, UserError } from '../util';

export const DEMO_CLASSES = ['sailboat', 'kayak', 'gondola', 'cruise_ship', 'ferry_boat'] as const;
export type DemoClass = (typeof DEMO_CLASSES)[number];

export interface DemoOptions {
  out: string;
  perClass?: number;
  seed?: number;
  /** Width range of the pictures in pixels, like the real photos (500-1400). */
  minWidth?: number;
  maxWidth?: number;
}

export interface DemoResult {
  out: string;
  classes: string[];
  images: number;
}

/** Writes `out/<class>/demo_<class>_NNNN.jpg` for the five tutorial classes. Deterministic for a seed. */
export async function makeDemoDataset(options: DemoOptions): Promise<DemoResult> {
  const perClass = options.perClass ?? 40;
  const seed = options.seed ?? 0;
  const minWidth = options.minWidth ?? 500;
  const maxWidth = options.maxWidth ?? 1400;
  if (!Number.isInteger(perClass) || perClass < 1)
    throw new UserError(`--per-class must be a positive integer, got ${perClass}`);
  const jobs = DEMO_CLASSES.flatMap((label) => Array.from({ length: perClass }, (_, i) => ({ label, i })));
  await replaceOwnedDirectory(options.out, { kind: 'demo-dataset', synthetic: true, seed, perClass }, async (tmp) => {
    for (const label of DEMO_CLASSES) fs.mkdirSync(path.join(tmp, label));
    await mapLimit(jobs, 4, async ({ label, i }) => {
      const rng = Random.derive(seed, 'demo', label, i);
      const svg = drawScene(label, rng, minWidth, maxWidth);
      const file = path.join(tmp, label, `demo_${label}_${String(i + 1).padStart(4, '0')}.jpg`);
      await sharp(Buffer.from(svg)).jpeg({ quality: 85 }).toFile(file);
    });
  });
  return { out: path.resolve(options.out), classes: [...DEMO_CLASSES], images: jobs.length };
}

/** The SVG of one synthetic scene: sky, water, a few distractors, and one boat of the class. */
export function drawScene(label: DemoClass, rng: Random, minWidth = 500, maxWidth = 1400): string {
  const w = rng.int(minWidth, maxWidth);
  const h = Math.round(w * rng.uniform(0.55, 1.0));
  const horizon = h * rng.uniform(0.35, 0.6);
  const skyHue = rng.uniform(190, 230);
  const waterHue = label === 'gondola' ? rng.uniform(150, 190) : rng.uniform(190, 220);
  const parts: string[] = [];
  parts.push(`<defs><linearGradient id="sky" x1="0" y1="0" x2="0" y2="1">
    <stop offset="0" stop-color="${hsl(skyHue, 60, rng.uniform(45, 65))}"/>
    <stop offset="1" stop-color="${hsl(skyHue + rng.uniform(-20, 20), 50, rng.uniform(75, 90))}"/></linearGradient></defs>`);
  parts.push(`<rect width="${w}" height="${h}" fill="url(#sky)"/>`);
  for (let c = rng.int(0, 3); c > 0; c--) {
    parts.push(
      `<ellipse cx="${rng.uniform(0, w)}" cy="${rng.uniform(0, horizon * 0.7)}" rx="${rng.uniform(w * 0.05, w * 0.15)}" ry="${rng.uniform(h * 0.02, h * 0.06)}" fill="white" opacity="${rng.uniform(0.5, 0.9)}"/>`,
    );
  }
  if (rng.next() < 0.5) {
    // A far shore.
    parts.push(
      `<rect x="0" y="${horizon - h * 0.04}" width="${w}" height="${h * 0.04}" fill="${hsl(rng.uniform(80, 140), 25, rng.uniform(25, 45))}"/>`,
    );
  }
  parts.push(
    `<rect y="${horizon}" width="${w}" height="${h - horizon}" fill="${hsl(waterHue, 45, rng.uniform(30, 50))}"/>`,
  );
  for (let k = rng.int(6, 16); k > 0; k--) {
    const y = rng.uniform(horizon, h);
    const x = rng.uniform(-w * 0.1, w);
    parts.push(
      `<rect x="${x}" y="${y}" width="${rng.uniform(w * 0.05, w * 0.3)}" height="${Math.max(1, h * 0.005)}" fill="white" opacity="0.35"/>`,
    );
  }
  // The boat is drawn in a unit box (width 1, waterline at y = 0, up is negative) and placed by a transform.
  const scale = w * rng.uniform(label === 'cruise_ship' ? 0.55 : 0.35, label === 'cruise_ship' ? 0.9 : 0.7);
  const cx = rng.uniform(scale * 0.5, w - scale * 0.5);
  const cy = rng.uniform(horizon + (h - horizon) * 0.25, horizon + (h - horizon) * 0.75);
  const flip = rng.next() < 0.5 ? -1 : 1;
  parts.push(`<g transform="translate(${cx} ${cy}) scale(${flip * scale} ${scale})">${BOATS[label](rng)}</g>`);
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}">${parts.join('')}</svg>`;
}

function hsl(h: number, s: number, l: number): string {
  return `hsl(${((h % 360) + 360) % 360},${s}%,${l}%)`;
}

const BOATS: Record<DemoClass, (rng: Random) => string> = {
  sailboat: (rng) => {
    const hull = hsl(rng.uniform(0, 360), rng.uniform(20, 70), rng.uniform(25, 85));
    const sail = hsl(rng.uniform(30, 60), rng.uniform(0, 30), rng.uniform(88, 98));
    const mast = -rng.uniform(0.9, 1.3);
    return `<path d="M-0.5 -0.08 L0.5 -0.08 L0.38 0.03 L-0.4 0.03 Z" fill="${hull}"/>
      <rect x="-0.02" y="${mast}" width="0.015" height="${-mast}" fill="#444"/>
      <path d="M0 ${mast} L0 -0.12 L0.42 -0.12 Z" fill="${sail}" stroke="#bbb" stroke-width="0.005"/>
      <path d="M-0.03 ${mast * 0.85} L-0.03 -0.12 L-0.38 -0.12 Z" fill="${sail}" opacity="0.92"/>`;
  },
  kayak: (rng) => {
    const body = hsl(rng.pick([0, 20, 45, 55, 120, 200]), 85, rng.uniform(45, 60));
    const angle = rng.uniform(-35, 35);
    return `<path d="M-0.5 -0.02 Q0 -0.09 0.5 -0.02 Q0 0.03 -0.5 -0.02 Z" fill="${body}"/>
      <rect x="-0.03" y="-0.2" width="0.06" height="0.14" rx="0.02" fill="${hsl(rng.uniform(0, 360), 60, 40)}"/>
      <circle cx="0" cy="-0.24" r="0.035" fill="#e0b48a"/>
      <g transform="rotate(${angle} 0 -0.13)"><rect x="-0.3" y="-0.135" width="0.6" height="0.01" fill="#333"/>
      <ellipse cx="-0.3" cy="-0.13" rx="0.05" ry="0.02" fill="#222"/><ellipse cx="0.3" cy="-0.13" rx="0.05" ry="0.02" fill="#222"/></g>`;
  },
  gondola: (rng) => {
    const trim = rng.pick(['#c9a227', '#8b0000', '#d4af37']);
    return `<path d="M-0.5 -0.22 Q-0.45 -0.02 -0.2 -0.03 L0.25 -0.03 Q0.46 -0.03 0.5 -0.28 Q0.52 -0.3 0.48 -0.2 Q0.42 0.03 0.2 0.03 L-0.2 0.03 Q-0.46 0.02 -0.52 -0.2 Z" fill="#111"/>
      <rect x="-0.12" y="-0.09" width="0.2" height="0.05" fill="${trim}"/>
      <rect x="0.27" y="-0.42" width="0.025" height="0.38" fill="#222"/>
      <circle cx="0.283" cy="-0.46" r="0.03" fill="#e0b48a"/>
      <rect x="0.22" y="-0.5" width="0.5" height="0.008" transform="rotate(${rng.uniform(50, 70)} 0.28 -0.3)" fill="#5a3b1a"/>`;
  },
  cruise_ship: (rng) => {
    const decks = rng.int(3, 5);
    const stripe = hsl(rng.pick([210, 0, 200, 230]), 70, 35);
    let out = `<path d="M-0.5 -0.14 L0.5 -0.14 L0.44 0.02 L-0.47 0.02 Z" fill="white"/>
      <rect x="-0.48" y="-0.05" width="0.94" height="0.025" fill="${stripe}"/>`;
    for (let d = 0; d < decks; d++) {
      const top = -0.14 - (d + 1) * 0.06;
      const inset = 0.04 + d * 0.05;
      out += `<rect x="${-0.5 + inset}" y="${top}" width="${1 - inset * 2 - 0.05}" height="0.06" fill="#f4f4f4" stroke="#ccc" stroke-width="0.003"/>`;
      for (let x = -0.5 + inset + 0.02; x < 0.45 - inset - 0.05; x += 0.03) {
        out += `<rect x="${x}" y="${top + 0.022}" width="0.018" height="0.016" fill="#234"/>`;
      }
    }
    out += `<rect x="0.05" y="${-0.14 - decks * 0.06 - 0.09}" width="0.07" height="0.09" fill="${stripe}"/>`;
    return out;
  },
  ferry_boat: (rng) => {
    const hull = hsl(rng.pick([0, 210, 130, 45]), 60, rng.uniform(30, 45));
    const funnel = hsl(rng.pick([0, 50, 30]), 85, 50);
    return `<path d="M-0.5 -0.12 L0.5 -0.12 L0.5 0.02 L-0.5 0.02 Z" fill="${hull}"/>
      <rect x="-0.3" y="-0.3" width="0.6" height="0.18" fill="#eee" stroke="#999" stroke-width="0.004"/>
      <rect x="-0.27" y="-0.25" width="0.54" height="0.05" fill="#333"/>
      <rect x="-0.12" y="-0.4" width="0.24" height="0.1" fill="#ddd"/>
      <rect x="-0.04" y="-0.52" width="0.08" height="0.12" fill="${funnel}"/>
      <rect x="-0.04" y="-0.52" width="0.08" height="0.025" fill="#111"/>`;
  },
};

export interface DatasetReady {
  dir: string;
  /** True when the folder holds the synthetic demo set. */
  synthetic: boolean;
  /** True when this call made the demo set (the folder was missing or empty). */
  made: boolean;
}

/**
 * Uses the images in `dir`. With `makeDemo` (the default data folder only: a folder the user named is
 * theirs, and a missing one is a typo, not a request for drawn pictures), a missing or empty folder first
 * gets the synthetic demo set; without it, a missing folder is a one-line error.
 */
export async function ensureDataset(
  dir: string,
  demoPerClass = 40,
  seed = 0,
  options: { makeDemo?: boolean } = {},
): Promise<DatasetReady> {
  const full = path.resolve(dir);
  if (options.makeDemo === false) requireDirectory(dir, 'data folder');
  else if (!fs.existsSync(full) || fs.readdirSync(full).length === 0) {
    await makeDemoDataset({ out: full, perClass: demoPerClass, seed });
    return { dir: full, synthetic: true, made: true };
  }
  return { dir: full, synthetic: readOwnedMarker(full)?.kind === 'demo-dataset', made: false };
}
