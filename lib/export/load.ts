/**
 * Reading an exported web folder back in Node: the CLI (`boat predict`, `boat evaluate`) runs the very
 * files the page loads. tf.loadLayersModel decodes the weight manifest, float16 and uint8 included,
 * with the same tfjs-core code as in the browser; only the fetching differs (files instead of HTTP).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '../engine/tf';

import { BoatModel, buildHead, cutAtFeatures, loadBoatModel, TrainingMode } from '../model';
import { readFileSha256Checked, readOwnedMarker, UserError } from '../util';
import { EXPORT_FORMAT, EXPORT_MARKER_KIND, ExportManifest } from '../web/boat-json';

export const BOAT_JSON = 'boat.json';

/** Whether `dir` looks like an export (has a boat.json); says nothing about whether it is intact. */
export function isExportFolder(dir: string): boolean {
  return fs.existsSync(path.join(dir, BOAT_JSON));
}

/** Whether `boat export` made this folder (boat.json and its ownership marker), so --force may replace it. */
export function isOwnExport(dir: string): boolean {
  const marker = readOwnedMarker(dir);
  if (marker?.kind !== EXPORT_MARKER_KIND) return false;
  try {
    return (JSON.parse(fs.readFileSync(path.join(dir, BOAT_JSON), 'utf8')) as ExportManifest).format === EXPORT_FORMAT;
  } catch {
    return false;
  }
}

export function readExportManifest(dir: string): ExportManifest {
  const file = path.join(dir, BOAT_JSON);
  let manifest: ExportManifest;
  try {
    manifest = JSON.parse(fs.readFileSync(file, 'utf8')) as ExportManifest;
  } catch {
    throw new UserError(
      fs.existsSync(file)
        ? `export description damaged (not JSON): ${file}`
        : `not an exported model (no ${BOAT_JSON}): ${dir}`,
    );
  }
  if (manifest.format !== EXPORT_FORMAT)
    throw new UserError(`${file}: unsupported export format "${manifest.format}" (expected ${EXPORT_FORMAT})`);
  return manifest;
}

/** The exported LayersModel (probabilities out), every file checked against boat.json's hashes. */
export async function loadExportedLayersModel(
  dir: string,
  manifest = readExportManifest(dir),
): Promise<tf.LayersModel> {
  const read = (rel: string): Buffer =>
    readFileSha256Checked(path.join(dir, rel), manifest.files[rel], 'exported model file', 'damaged');
  let json: { modelTopology: object; weightsManifest: tf.io.WeightsManifestConfig };
  try {
    json = JSON.parse(read(manifest.model.path).toString('utf8')) as typeof json;
  } catch (err) {
    if (err instanceof UserError) throw err;
    throw new UserError(`exported model damaged (not JSON): ${path.join(dir, manifest.model.path)}`);
  }
  const base = path.posix.dirname(manifest.model.path);
  const weightSpecs: tf.io.WeightsManifestEntry[] = [];
  const shards: Buffer[] = [];
  for (const group of json.weightsManifest) {
    weightSpecs.push(...group.weights);
    for (const p of group.paths) shards.push(read(path.posix.join(base, p)));
  }
  const weightData = Buffer.concat(shards);
  return tf.loadLayersModel(
    tf.io.fromMemory({
      modelTopology: json.modelTopology,
      weightSpecs,
      weightData: weightData.buffer.slice(weightData.byteOffset, weightData.byteOffset + weightData.byteLength),
    }),
  );
}

/**
 * The export as a BoatModel, so that predict and evaluate run on it unchanged: the network is cut at
 * the feature layer, and the head is rebuilt with the exported Dense weights (log-softmax again).
 */
export async function loadExportedModel(dir: string): Promise<BoatModel> {
  const manifest = readExportManifest(dir);
  const full = await loadExportedLayersModel(dir, manifest);
  const head = buildHead(manifest.classes.length, {
    features: full.getLayer(manifest.model.featureLayer).outputShape[1] as number,
    ...manifest.model.head,
  });
  for (const name of ['fc1', 'fc2']) head.getLayer(name).setWeights(full.getLayer(name).getWeights());
  const backbone = cutAtFeatures(full, manifest.model.featureLayer);
  const info = {
    classes: manifest.classes,
    preprocessing: manifest.preprocessing.normalization,
    inputSize: manifest.inputSize,
    weightsId: manifest.source.weightsId,
    weightsChecksum: manifest.source.weightsChecksum,
  };
  return new BoatModel(backbone, head, info, manifest.source.mode as TrainingMode);
}

/** A saved model folder or an exported web folder, whichever `dir` is. */
export async function loadAnyModel(dir: string, options: { inputSize?: number } = {}): Promise<BoatModel> {
  if (!isExportFolder(dir)) return loadBoatModel(dir, undefined, options);
  if (options.inputSize !== undefined)
    throw new UserError(
      `--input-size does not apply to an exported folder (${dir} is fixed at ${readExportManifest(dir).inputSize} px)`,
    );
  return loadExportedModel(dir);
}
