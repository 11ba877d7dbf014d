/**
 * `boat export`: a trained model as a self-contained static web site (index.html, the bundled page
 * script, tfjs' wasm binaries, the model as a sharded tfjs LayersModel, boat.json). Nothing on the
 * page is fetched from anywhere but the folder itself.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '../engine/tf';

import { resizeFor, CAFFE_MEAN_BGR, IMAGENET_MEAN, IMAGENET_STD } from '../images/transforms';
import { BoatModel, loadBoatModel, readModelMetadata } from '../model';
import { replaceOwnedDirectory, sha256Hex, UserError } from '../util';
import {
  EXPORT_FORMAT,
  EXPORT_MARKER_KIND,
  ExportManifest,
  MODEL_JSON,
  Quantization,
  QUANTIZATIONS,
} from '../web/boat-json';
import { webModelArtifacts } from './layers-artifacts';
import { BOAT_JSON, isExportFolder, isOwnExport, loadExportedLayersModel } from './load';
import { quantizeWeights } from './quantize';
import { pageFiles } from './site-files';

/** tfjs' Python converter's default shard size: small enough for any static host and HTTP cache. */
export const DEFAULT_SHARD_BYTES = 4 * 1024 * 1024;

export interface ExportOptions {
  model: string;
  out: string;
  quantize?: string;
  force?: boolean;
  shardBytes?: number;
}

export interface ExportResult {
  out: string;
  manifest: ExportManifest;
  /** Bytes of the model files (model.json and shards), and of the whole folder. */
  modelBytes: number;
  totalBytes: number;
  /** Largest difference in any class probability between the export and the source model on a test input. */
  maxProbabilityDifference: number;
}

export function parseQuantization(value: string | undefined): Quantization {
  const q = (value ?? 'none') as Quantization;
  if (!QUANTIZATIONS.includes(q)) throw new UserError(`--quantize must be ${QUANTIZATIONS.join(', ')}, got "${value}"`);
  return q;
}

function checkOut(modelDir: string, out: string, force: boolean): void {
  const target = path.resolve(out);
  const source = path.resolve(modelDir);
  if (target === source || target.startsWith(source + path.sep) || source.startsWith(target + path.sep))
    throw new UserError(`--out ${out} overlaps the model folder ${modelDir}; choose another folder`);
  if (!fs.existsSync(target)) return;
  if (!force) throw new UserError(`--out ${out} exists; add --force to replace an earlier export there`);
  if (!isOwnExport(target))
    throw new UserError(
      `--out ${out} exists and is not a folder made by boat export (no boat.json with its marker); refusing to replace it`,
    );
}

/** The weights files: shards of at most `shardBytes`, named like the converter's. */
function shard(data: Uint8Array, shardBytes: number): Array<{ name: string; data: Uint8Array }> {
  const count = Math.max(1, Math.ceil(data.byteLength / shardBytes));
  return Array.from({ length: count }, (_, i) => ({
    name: `group1-shard${i + 1}of${count}.bin`,
    data: data.subarray(i * shardBytes, Math.min(data.byteLength, (i + 1) * shardBytes)),
  }));
}

/** A fixed pseudo-random image in the model's input range, to compare the export with its source. */
function probeInput(model: BoatModel): tf.Tensor4D {
  const s = model.info.inputSize;
  return tf.tidy(() => {
    const pixels = tf.randomUniform([1, s, s, 3], 0, 255, 'float32', 7);
    return model.info.preprocessing === 'caffe'
      ? pixels.reverse(-1).sub(CAFFE_MEAN_BGR)
      : pixels.div(255).sub(IMAGENET_MEAN).div(IMAGENET_STD);
  });
}

export async function exportModel(options: ExportOptions): Promise<ExportResult> {
  const quantize = parseQuantization(options.quantize);
  const shardBytes = options.shardBytes ?? DEFAULT_SHARD_BYTES;
  if (!fs.existsSync(options.model)) throw new UserError(`model not found: ${options.model}`);
  if (isExportFolder(options.model))
    throw new UserError(`${options.model} is already an export; export the saved model it came from`);
  const metadata = readModelMetadata(options.model);
  checkOut(options.model, options.out, options.force === true);
  const site = pageFiles();
  const model = await loadBoatModel(options.model);
  try {
    const artifacts = await webModelArtifacts(model);
    const weights =
      quantize === 'none'
        ? { specs: artifacts.weightSpecs, data: artifacts.weightData }
        : quantizeWeights(artifacts.weightSpecs, artifacts.weightData, quantize);
    const shards = shard(weights.data, shardBytes);
    const modelJson = JSON.stringify({
      format: 'layers-model',
      generatedBy: `TensorFlow.js tfjs-layers v${tf.version_layers}`,
      convertedBy: 'boat export',
      modelTopology: artifacts.modelTopology,
      weightsManifest: [{ paths: shards.map((s) => s.name), weights: weights.specs }],
    });
    const modelBase = path.posix.dirname(MODEL_JSON);
    const fc1 = model.head.getLayer('fc1').getConfig();
    const dropout = model.head.getLayer('dropout').getConfig();
    const manifest: ExportManifest = {
      format: EXPORT_FORMAT,
      classes: model.classes,
      inputSize: model.info.inputSize,
      preprocessing: {
        resize: resizeFor(model.info.inputSize),
        crop: model.info.inputSize,
        normalization: model.info.preprocessing,
        mean: model.info.preprocessing === 'caffe' ? CAFFE_MEAN_BGR : IMAGENET_MEAN,
        std: model.info.preprocessing === 'caffe' ? null : IMAGENET_STD,
      },
      precision: quantize === 'none' ? 'float32' : quantize,
      model: {
        format: 'layers-model',
        path: MODEL_JSON,
        bytes: Buffer.byteLength(modelJson) + weights.data.byteLength,
        shards: shards.length,
        featureLayer: artifacts.featureLayer,
        head: { hidden: fc1.units as number, dropout: dropout.rate as number },
      },
      source: {
        path: path.resolve(options.model),
        metadataSha256: sha256Hex(fs.readFileSync(path.join(options.model, 'metadata.json'))),
        mode: metadata.mode,
        weightsId: metadata.weightsId,
        weightsChecksum: metadata.weightsChecksum,
        metrics: metadata.metrics,
      },
      options: { quantize, shardBytes },
      exportedAt: new Date().toISOString(),
      files: {},
    };
    let totalBytes = 0;
    let maxProbabilityDifference = NaN;
    await replaceOwnedDirectory(options.out, { kind: EXPORT_MARKER_KIND }, async (tmp) => {
      const write = (rel: string, data: string | Uint8Array): void => {
        fs.mkdirSync(path.dirname(path.join(tmp, rel)), { recursive: true });
        fs.writeFileSync(path.join(tmp, rel), data);
        manifest.files[rel] = sha256Hex(data);
        totalBytes += typeof data === 'string' ? Buffer.byteLength(data) : data.byteLength;
      };
      for (const f of site) write(f.to, fs.readFileSync(f.from));
      write(MODEL_JSON, modelJson);
      for (const s of shards) write(`${modelBase}/${s.name}`, s.data);
      const text = JSON.stringify(manifest, null, 2) + '\n';
      fs.writeFileSync(path.join(tmp, BOAT_JSON), text);
      totalBytes += Buffer.byteLength(text);
      maxProbabilityDifference = await compareWithSource(model, tmp, manifest);
    });
    return { out: options.out, manifest, modelBytes: manifest.model.bytes, totalBytes, maxProbabilityDifference };
  } finally {
    model.dispose();
  }
}

/**
 * Loads what was just written, as the CLI would, and compares its probabilities with the source
 * model's on a fixed input: a damaged write or a topology mistake fails the export instead of shipping.
 */
async function compareWithSource(model: BoatModel, dir: string, manifest: ExportManifest): Promise<number> {
  const exported = await loadExportedLayersModel(dir, manifest);
  try {
    const x = probeInput(model);
    const diff = tf.tidy(
      () => tf.max(tf.abs(tf.sub(tf.exp(model.forward(x)), exported.predict(x) as tf.Tensor))).dataSync()[0],
    );
    x.dispose();
    // Quantized weights change the probabilities by design; NaN there still means a broken export.
    if (Number.isNaN(diff) || (manifest.precision === 'float32' && diff > 1e-4))
      throw new Error(`the exported model's probabilities differ from the source model's by ${diff}`);
    return diff;
  } finally {
    exported.dispose();
  }
}
