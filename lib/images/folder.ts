/** ImageFolder: torchvision's class-per-folder dataset, on top of the data scan. */
import { scanImageFolder, Skipped } from '../data/scan';
import { Random, UserError } from '../util';
import { ImageDecodeError, openImage } from './sample';
import type { FloatImage } from './types';
import type { Transform } from './transforms';

export interface LoadedSample {
  image: FloatImage;
  label: number;
  file: string;
}

export class ImageFolder {
  readonly root: string;
  readonly classes: string[];
  readonly classToIdx: Record<string, number>;
  readonly samples: ReadonlyArray<{ file: string; label: number }>;
  /** Files left out: by the scan (non-images, empty folders) and, as they are met, files that fail to decode. */
  readonly skipped: Skipped[];

  constructor(
    root: string,
    readonly transform: Transform,
  ) {
    const scanned = scanImageFolder(root);
    if (scanned.files.length === 0) throw new UserError(`no images found in ${root}: expected <class>/<image> folders`);
    this.root = scanned.root;
    this.classes = scanned.classes;
    this.classToIdx = Object.fromEntries(this.classes.map((c, i) => [c, i]));
    this.samples = scanned.files.map((f) => ({ file: f.file, label: this.classToIdx[f.label] }));
    this.skipped = [...scanned.skipped];
  }

  get length(): number {
    return this.samples.length;
  }

  /**
   * Loads and transforms sample `index`. Returns null, and records the reason in `skipped`, when the
   * file cannot be decoded; other errors (a bug in a transform) propagate.
   */
  async load(index: number, rng: Random): Promise<LoadedSample | null> {
    const { file, label } = this.samples[index];
    try {
      return { image: await loadImage(file, this.transform, rng), label, file };
    } catch (err) {
      if (err instanceof ImageDecodeError) {
        this.recordSkip(file, err.reason);
        return null;
      }
      throw err;
    }
  }

  /** Notes a file that could not be decoded (once). */
  recordSkip(file: string, reason: string): void {
    if (!this.skipped.some((s) => s.path === file)) this.skipped.push({ path: file, reason });
  }
}

/** Opens, decodes and transforms one image file. Throws ImageDecodeError for a bad file. */
export async function loadImage(file: string, transform: Transform, rng: Random): Promise<FloatImage> {
  const out = await transform.apply(await openImage(file), rng);
  if (out.kind !== 'float')
    throw new Error(`the transform must end with ToTensor/Normalize or CaffePreprocess (${transform.name})`);
  return out;
}
