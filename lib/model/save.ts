/**
 * Saving and loading trained models under models/<name>/ in TF.js format:
 *
 *   metadata.json      classes, preprocessing, input size, weights source and checksum, mode, metrics,
 *                      the precision it was trained or saved in (fp32 or bf16),
 *                      and the SHA-256 of every file below
 *   head/model.json + head/weights.bin
 *   backbone/model.json + backbone/weights.bin   (when the backbone changed: fine-tuned models; a
 *                      feature extractor's backbone is the pretrained one, found again by its checksum)
 *
 * The folder is written next to its target and renamed into place, so a crash mid-save leaves the
 * previous model intact; loading checks every file's hash, so a damaged file is never read as valid.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '../engine/tf';

import { activePrecision, Precision } from '../engine/precision';

import { readFileSha256Checked, recoverInterruptedSave, replaceOwnedDirectory, sha256Hex, UserError } from '../util';
import { BoatModel, BoatModelInfo, cutAtFeatures, TrainingMode, TRAINING_MODES } from './model';
import { defaultWeights, setInputSize, WeightsSource } from './weights';

export const MODEL_FORMAT = 'boat-model/1';

export interface ModelMetadata extends BoatModelInfo {
  format: string;
  backbone: 'saved' | 'pretrained';
  weightsDescription: string;
  params: { total: number; trainable: number };
  metrics: Record<string, unknown>;
  savedAt: string;
  /** What the convolutions and matrix products computed in when it was saved (absent: saved before precisions, fp32). */
  precision?: Precision;
  files: Record<string, string>;
}

function joinWeightData(data: ArrayBuffer | ArrayBuffer[]): Uint8Array {
  const parts = Array.isArray(data) ? data : [data];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let offset = 0;
  for (const p of parts) {
    out.set(new Uint8Array(p), offset);
    offset += p.byteLength;
  }
  return out;
}

/** Writes a LayersModel as model.json + weights.bin into `dir`; returns the files' hashes. */
async function writeLayersModel(
  model: tf.LayersModel,
  dir: string,
  prefix: string,
  inputSize?: number,
): Promise<Record<string, string>> {
  fs.mkdirSync(dir, { recursive: true });
  const hashes: Record<string, string> = {};
  await model.save({
    save: async (artifacts: tf.io.ModelArtifacts) => {
      // The size the model takes now (BoatModel.setInputSize), which may not be the one it was built at.
      if (inputSize !== undefined) setInputSize(artifacts.modelTopology as object, inputSize);
      const weights = joinWeightData(artifacts.weightData as ArrayBuffer | ArrayBuffer[]);
      const json = JSON.stringify({
        format: 'layers-model',
        generatedBy: `TensorFlow.js tfjs-layers v${tf.version_layers}`,
        convertedBy: null,
        modelTopology: artifacts.modelTopology,
        weightsManifest: [{ paths: ['weights.bin'], weights: artifacts.weightSpecs }],
      });
      fs.writeFileSync(path.join(dir, 'model.json'), json);
      fs.writeFileSync(path.join(dir, 'weights.bin'), weights);
      hashes[`${prefix}/model.json`] = sha256Hex(json);
      hashes[`${prefix}/weights.bin`] = sha256Hex(weights);
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    },
  });
  return hashes;
}

function readChecked(dir: string, relative: string, expected: string | undefined): Buffer {
  return readFileSha256Checked(path.join(dir, relative), expected, 'model file', 'damaged');
}

async function readLayersModel(
  dir: string,
  prefix: string,
  files: Record<string, string>,
  inputSize?: number,
): Promise<tf.LayersModel> {
  const json = JSON.parse(readChecked(dir, `${prefix}/model.json`, files[`${prefix}/model.json`]).toString('utf8')) as {
    modelTopology: object;
    weightsManifest: tf.io.WeightsManifestConfig;
  };
  if (inputSize !== undefined) setInputSize(json.modelTopology, inputSize);
  const weights = readChecked(dir, `${prefix}/weights.bin`, files[`${prefix}/weights.bin`]);
  const weightData = weights.buffer.slice(weights.byteOffset, weights.byteOffset + weights.byteLength);
  return tf.loadLayersModel(
    tf.io.fromMemory({ modelTopology: json.modelTopology, weightSpecs: json.weightsManifest[0].weights, weightData }),
  );
}

/** Saves the model (atomically replacing a previous save at `dir`). */
export async function saveBoatModel(
  model: BoatModel,
  dir: string,
  metrics: Record<string, unknown> = {},
  weightsDescription = '',
  /** Other files to store with the model (history.csv, config.json...), written in the same atomic swap. */
  extraFiles: Record<string, string> = {},
): Promise<ModelMetadata> {
  let metadata: ModelMetadata | undefined;
  const marker = { kind: 'boat-model' };
  await replaceOwnedDirectory(dir, marker, async (tmp) => {
    const files = await writeLayersModel(model.head, path.join(tmp, 'head'), 'head');
    const saveBackbone = model.mode === 'finetune' || model.backboneChanged;
    if (saveBackbone)
      Object.assign(
        files,
        await writeLayersModel(model.backbone, path.join(tmp, 'backbone'), 'backbone', model.info.inputSize),
      );
    const counts = model.paramCounts();
    metadata = {
      format: MODEL_FORMAT,
      ...model.info,
      mode: model.mode,
      backbone: saveBackbone ? 'saved' : 'pretrained',
      weightsDescription,
      params: { total: counts.total, trainable: counts.trainable },
      metrics,
      savedAt: new Date().toISOString(),
      precision: activePrecision(),
      files,
    };
    for (const [name, text] of Object.entries(extraFiles)) fs.writeFileSync(path.join(tmp, name), text);
    fs.writeFileSync(path.join(tmp, 'metadata.json'), JSON.stringify(metadata, null, 2) + '\n');
  });
  return metadata!;
}

export function readModelMetadata(dir: string): ModelMetadata {
  recoverInterruptedSave(dir);
  const file = path.join(dir, 'metadata.json');
  let metadata: ModelMetadata;
  try {
    metadata = JSON.parse(fs.readFileSync(file, 'utf8')) as ModelMetadata;
  } catch {
    throw new UserError(
      fs.existsSync(file) ? `model metadata damaged: ${file}` : `not a saved model (no metadata.json): ${dir}`,
    );
  }
  if (metadata === null || typeof metadata !== 'object' || Array.isArray(metadata))
    throw new UserError(`model metadata damaged (not a JSON object): ${file}`);
  if (metadata.format !== MODEL_FORMAT) {
    const version =
      typeof metadata.format === 'string'
        ? `format "${metadata.format}"`
        : 'no format field (written before formats were recorded)';
    throw new UserError(
      `${file}: model in ${version}; this version of boat reads ${MODEL_FORMAT} only: train it again, or use the boat version that wrote it`,
    );
  }
  const missing = METADATA_FIELDS.filter(
    ([name, valid]) => !valid((metadata as unknown as Record<string, unknown>)[name]),
  ).map(([name]) => name);
  if (missing.length > 0)
    throw new UserError(
      `${file}: ${MODEL_FORMAT} metadata with ${missing.map((m) => `"${m}"`).join(', ')} missing or invalid: the file is damaged or was edited; train the model again`,
    );
  return metadata;
}

const isString = (v: unknown): boolean => typeof v === 'string' && v.length > 0;

/** The metadata fields loading relies on, each with its check (metrics, params and savedAt are informative only). */
const METADATA_FIELDS: ReadonlyArray<[keyof ModelMetadata, (v: unknown) => boolean]> = [
  ['classes', (v) => Array.isArray(v) && v.length > 0 && v.every(isString)],
  ['mode', (v) => TRAINING_MODES.includes(v as TrainingMode)],
  ['preprocessing', isString],
  ['inputSize', (v) => Number.isInteger(v) && (v as number) >= 32],
  ['weightsId', isString],
  ['weightsChecksum', isString],
  ['backbone', (v) => v === 'saved' || v === 'pretrained'],
  ['files', (v) => typeof v === 'object' && v !== null && isString((v as Record<string, unknown>)['head/weights.bin'])],
];

/**
 * Loads a model saved by saveBoatModel. A feature extractor's backbone comes from the weights source,
 * which must be the one it was trained on (same id, preprocessing and checksum). `inputSize` rebuilds
 * the network for another input size than it was trained at (the weights do not depend on it), e.g. to
 * evaluate a 224 px model on larger crops.
 */
export async function loadBoatModel(
  dir: string,
  weights: WeightsSource = defaultWeights(),
  options: { inputSize?: number } = {},
): Promise<BoatModel> {
  const metadata = readModelMetadata(dir);
  const resize =
    options.inputSize !== undefined && options.inputSize !== metadata.inputSize ? options.inputSize : undefined;
  if (resize !== undefined) metadata.inputSize = resize;
  const head = await readLayersModel(dir, 'head', metadata.files);
  let backbone: tf.LayersModel;
  if (metadata.backbone === 'saved') {
    backbone = await readLayersModel(dir, 'backbone', metadata.files, resize);
  } else {
    if (weights.id !== metadata.weightsId || weights.preprocessing !== metadata.preprocessing) {
      throw new UserError(
        `model ${dir} was trained on backbone "${metadata.weightsId}" (${metadata.preprocessing} preprocessing), not "${weights.id}" (${weights.preprocessing})`,
      );
    }
    const loaded = await weights.load(metadata.inputSize);
    if (loaded.checksum !== metadata.weightsChecksum) {
      loaded.model.dispose();
      throw new UserError(
        `model ${dir} was trained on other "${metadata.weightsId}" weights (checksum ${metadata.weightsChecksum.slice(0, 12)}…, installed ${loaded.checksum.slice(0, 12)}…)`,
      );
    }
    backbone = cutAtFeatures(loaded.model, weights.featureLayer);
  }
  const { classes, preprocessing, inputSize, weightsId, weightsChecksum } = metadata;
  const model = new BoatModel(
    backbone,
    head,
    { classes, preprocessing, inputSize, weightsId, weightsChecksum },
    metadata.mode,
  );
  // A saved backbone is one that training changed: it stays "changed" in any mode, so that a feature
  // extractor started from a fine-tune (--init) saves it again and never caches it as the pretrained one.
  model.backboneChanged = metadata.backbone === 'saved';
  return model;
}

/** A clear error when a model's classes are not the data's classes. */
export function checkClassesMatch(
  modelClasses: readonly string[],
  dataClasses: readonly string[],
  where: string,
): void {
  const same = modelClasses.length === dataClasses.length && modelClasses.every((c, i) => c === dataClasses[i]);
  if (same) return;
  const missing = dataClasses.filter((c) => !modelClasses.includes(c));
  const extra = modelClasses.filter((c) => !dataClasses.includes(c));
  const parts = [
    missing.length ? `not in the model: ${missing.join(', ')}` : '',
    extra.length ? `not in the data: ${extra.join(', ')}` : '',
    !missing.length && !extra.length ? 'same names in another order' : '',
  ].filter(Boolean);
  throw new UserError(
    `the model's ${modelClasses.length} classes do not match the ${dataClasses.length} classes of ${where} (${parts.join('; ')})`,
  );
}
