/**
 * The tutorial's network: a ResNet50 backbone cut at global average pooling (2048 features) and the
 * head Dense(256) → ReLU → Dropout(0.4) → Dense(n) → log-softmax, trained with NLL.
 *
 * The tutorial feeds its LogSoftmax output to CrossEntropyLoss, which applies log-softmax again (a
 * double softmax). Here the head ends in log-softmax and the loss is NLL, which together are exactly
 * cross-entropy.
 *
 * Two modes:
 * - finetune: every weight trains, BatchNorm uses batch statistics while training;
 * - feature-extractor: only the head trains, and the backbone always runs in inference mode. In TF.js,
 *   `trainable = false` alone does NOT do that: BatchNormalization still normalises with batch
 *   statistics whenever `training: true` reaches it, so forward() never passes it to a frozen backbone.
 *
 * Whenever the backbone does not train (features, evaluation, predict, Grad-CAM, a feature extractor's
 * head training), it runs with BatchNorm folded into the convolutions (folded.ts).
 */
import * as crypto from 'node:crypto';

import * as tf from '../engine/tf';

import type { Preprocessing } from '../images/transforms';
import { UserError } from '../util';
import { useFusedAddRelu } from '../engine/add-relu';
import { FreezableBatchNorm, useFusedBatchNorm } from '../engine/batchnorm';
import { useLazyConvGradients } from '../engine/conv-layer-gradients';
import { FoldedBackbone, UnfoldableNetwork } from './folded';
import { checkInputSize, defaultWeights, WeightsSource } from './weights';

export type TrainingMode = 'finetune' | 'feature-extractor';
export const TRAINING_MODES: readonly TrainingMode[] = ['finetune', 'feature-extractor'];

/** log-softmax over the last axis, as a layer so that the head saves and loads as a LayersModel. */
export class LogSoftmax extends tf.layers.Layer {
  static readonly className = 'LogSoftmax';

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => tf.logSoftmax(Array.isArray(inputs) ? inputs[0] : inputs));
  }
}
tf.serialization.registerClass(LogSoftmax);

/**
 * Dropout whose random mask comes from a seed the trainer sets before each step. TF.js' Dropout layer
 * with a fixed `seed` draws the same mask on every call, and without one it uses Math.random, which
 * an exact resume cannot replay.
 */
export class StepDropout extends tf.layers.Layer {
  static readonly className = 'StepDropout';
  readonly rate: number;
  /** Set by the trainer before each step; the mask is a function of it. */
  stepSeed = 0;

  constructor(config: { rate: number; name?: string }) {
    super({ name: config.name });
    this.rate = config.rate;
  }

  override call(inputs: tf.Tensor | tf.Tensor[], kwargs: { training?: boolean }): tf.Tensor {
    const x = Array.isArray(inputs) ? inputs[0] : inputs;
    if (!kwargs.training || this.rate === 0) return x.clone();
    return tf.dropout(x, this.rate, undefined, this.stepSeed);
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), rate: this.rate };
  }
}
tf.serialization.registerClass(StepDropout);

export interface HeadOptions {
  features?: number;
  hidden?: number;
  dropout?: number;
  seed?: number;
}

/** Dense(hidden) → ReLU → Dropout → Dense(classes) → log-softmax. */
export function buildHead(classes: number, options: HeadOptions = {}): tf.LayersModel {
  const { features = 2048, hidden = 256, dropout = 0.4, seed = 0 } = options;
  const input = tf.input({ shape: [features], name: 'features' });
  let x = tf.layers
    .dense({
      units: hidden,
      activation: 'relu',
      name: 'fc1',
      kernelInitializer: tf.initializers.glorotUniform({ seed }),
    })
    .apply(input) as tf.SymbolicTensor;
  x = new StepDropout({ rate: dropout, name: 'dropout' }).apply(x) as tf.SymbolicTensor;
  x = tf.layers
    .dense({ units: classes, name: 'fc2', kernelInitializer: tf.initializers.glorotUniform({ seed: seed + 1 }) })
    .apply(x) as tf.SymbolicTensor;
  const out = new LogSoftmax({ name: 'log_softmax' }).apply(x) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: out, name: 'head' });
}

/**
 * Mean negative log-likelihood of integer labels under log-probabilities. With class weights it is
 * PyTorch's NLLLoss(weight=…): each sample's loss times its class weight, divided by the sum of those weights.
 *
 * With label smoothing x it is PyTorch's CrossEntropyLoss(weight, label_smoothing=x) on class indices
 * (cross_entropy_loss_label_smoothing in ATen's LossNLL.cpp): (1 − x)·NLL + (x / C)·U, where U is the mean
 * over samples of Σ_c w_c·(−log p_c), divided like NLL by Σ w_{y_i} when weighted. Unweighted, that is the
 * cross-entropy against the target (1 − x)·one-hot + x / C. Weighted, each class term of the uniform part
 * carries that class' weight, not the sample's true class weight; tf.losses.softmaxCrossEntropy's
 * weighted form (per-sample weights, divided by the count of non-zero ones) is neither, hence our own.
 */
export function nllLoss(
  logProbs: tf.Tensor2D,
  labels: tf.Tensor1D,
  classWeights?: readonly number[],
  labelSmoothing = 0,
): tf.Scalar {
  return tf.tidy(() => {
    const perSample = tf.neg(tf.sum(tf.mul(logProbs, tf.oneHot(labels, logProbs.shape[1]).toFloat()), 1));
    const w = classWeights ? tf.tensor1d(classWeights as number[]) : undefined;
    const sampleWeights = w ? tf.gather(w, labels) : undefined;
    const nll = sampleWeights
      ? tf.div<tf.Scalar>(tf.sum(tf.mul(perSample, sampleWeights)), tf.sum(sampleWeights))
      : tf.mean<tf.Scalar>(perSample);
    // Zero keeps the plain loss, bit for bit, rather than adding 0 · U.
    if (labelSmoothing === 0) return nll;
    const uniformPerSample = tf.neg(tf.sum(w ? tf.mul(logProbs, w) : logProbs, 1));
    const uniform = sampleWeights ? tf.div(tf.sum(uniformPerSample), tf.sum(sampleWeights)) : tf.mean(uniformPerSample);
    return tf.add<tf.Scalar>(tf.mul(nll, 1 - labelSmoothing), tf.mul(uniform, labelSmoothing / logProbs.shape[1]));
  });
}

/** "Balanced" class weights (scikit-learn's): n / (classes × count), so that every class weighs the same in total. */
export function balancedClassWeights(labels: ArrayLike<number>, classes: number): number[] {
  const counts = new Array<number>(classes).fill(0);
  for (let i = 0; i < labels.length; i++) counts[labels[i]]++;
  return counts.map((c) => (c === 0 ? 0 : labels.length / (classes * c)));
}

export interface ParamCounts {
  total: number;
  trainable: number;
  nonTrainable: number;
}

export interface BoatModelInfo {
  classes: string[];
  mode: TrainingMode;
  preprocessing: Preprocessing;
  inputSize: number;
  weightsId: string;
  weightsChecksum: string;
}

/**
 * ResNet50 stage (1–5) of a Keras layer or weight name; null outside them. The bundled weights use
 * Keras' first naming (conv1, bn_conv1, res4b_branch2a, bn4b_branch2a); newer Keras writes
 * conv1_conv, conv4_block2_1_bn.
 */
export function resnetStage(name: string): number | null {
  const layer = name.split('/')[0];
  if (/^(conv1|bn_conv1)(_|$)/.test(layer)) return 1;
  const m = /^(?:res|bn)([2-5])[a-z]_branch/.exec(layer) ?? /^conv([1-5])_/.exec(layer);
  return m ? Number(m[1]) : null;
}

export class BoatModel {
  private _mode: TrainingMode;
  private _unfrozenStages: number | null = null;
  private _batchNormFrozen = false;
  /**
   * True once the backbone may differ from the pretrained weights: trained, BatchNorm statistics updated,
   * averaged, or loaded from a saved model's own backbone. Such a backbone is saved with the model and
   * keyed in the feature cache by its own weights (backboneKey), never by the pretrained checksum.
   */
  backboneChanged = false;
  /**
   * Whether inference runs the folded backbone (the default). False runs the Layers model with its
   * BatchNorm layers, for comparisons; training the backbone always does.
   */
  foldBatchNorm = true;
  /** null where the backbone has a structure folded.ts does not handle: inference then stays unfolded. */
  private readonly folded: FoldedBackbone | null;

  constructor(
    readonly backbone: tf.LayersModel,
    readonly head: tf.LayersModel,
    readonly info: Omit<BoatModelInfo, 'mode'>,
    mode: TrainingMode,
  ) {
    useFusedBatchNorm(backbone);
    useFusedAddRelu(backbone);
    useLazyConvGradients(backbone);
    this._mode = mode;
    this.mode = mode;
    // Folded now rather than at the first inference, so that tf.memory().numTensors is the same
    // before and after any inference; refolding when weights change replaces tensors one for one.
    this.folded = foldedOrNull(backbone);
  }

  /**
   * Switches the square input size the model takes (progressive resizing). Convolutions and global
   * pooling do not depend on it, so the weights stay; the saved topology takes the size current then.
   */
  setInputSize(size: number): void {
    checkInputSize(size);
    this.info.inputSize = size;
  }

  /** Whether inference runs with BatchNorm folded into the convolutions now. */
  get folding(): boolean {
    return this.folded !== null && this.foldBatchNorm;
  }

  get classes(): string[] {
    return this.info.classes;
  }

  get mode(): TrainingMode {
    return this._mode;
  }

  /** Switches between fine-tuning and a frozen backbone. */
  set mode(mode: TrainingMode) {
    this._mode = mode;
    this.backbone.trainable = mode === 'finetune';
  }

  /** Fine-tuning trains the last N of ResNet50's 5 stages (null: all of it, the tutorial's way). */
  get unfrozenStages(): number | null {
    return this._unfrozenStages;
  }

  /**
   * Fine-tune only the last `n` stages (conv5_… is the last): a CPU-friendly middle ground between
   * the two tutorial modes. The frozen stages keep their ImageNet weights and run BatchNorm in
   * inference mode, and the backward pass stops where they begin.
   */
  set unfrozenStages(n: number | null) {
    if (n !== null && (!Number.isInteger(n) || n < 1 || n > 5))
      throw new UserError(`the number of unfrozen stages must be 1 to 5, got ${n}`);
    this._unfrozenStages = n;
    this.applyBatchNormFreezing();
  }

  get batchNormFrozen(): boolean {
    return this._batchNormFrozen;
  }

  /**
   * Fine-tune with every BatchNorm normalising by its moving (ImageNet) statistics and leaving them
   * as they are; gamma and beta still train. For small batches (wasm runs large batches as micro-batches
   * that fit its heap), and for fine-tuning a trained feature extractor, whose head learnt those
   * statistics' features.
   */
  set batchNormFrozen(frozen: boolean) {
    this._batchNormFrozen = frozen;
    this.applyBatchNormFreezing();
  }

  private applyBatchNormFreezing(): void {
    for (const layer of this.backbone.layers) {
      if (layer.getClassName() === 'BatchNormalization')
        (layer as unknown as FreezableBatchNorm).frozen = this._batchNormFrozen || !this.inTrainedStage(layer.name);
    }
  }

  private inTrainedStage(name: string): boolean {
    if (this._unfrozenStages === null) return true;
    const stage = resnetStage(name);
    return stage !== null && stage > 5 - this._unfrozenStages;
  }

  /** Backbone features (inference mode): what feature-extractor training caches. */
  features(x: tf.Tensor4D): tf.Tensor2D {
    this.checkInput(x);
    return this.inferenceFeatures(x);
  }

  private inferenceFeatures(x: tf.Tensor4D): tf.Tensor2D {
    if (this.folded && this.foldBatchNorm) return this.folded.features(x);
    return this.backbone.apply(x, { training: false }) as tf.Tensor2D;
  }

  /** The last stage's feature maps [n, 7, 7, 2048] at 224 px (the global pool's input), in inference mode: Grad-CAM's. */
  featureMaps(x: tf.Tensor4D): tf.Tensor4D {
    this.checkInput(x);
    if (this.folded && this.foldBatchNorm) return this.folded.maps(x);
    const pool = this.backbone.layers[this.backbone.layers.length - 1];
    const source = pool.inboundNodes[0].inboundLayers[0];
    const upToMaps = tf.model({ inputs: this.backbone.inputs, outputs: source.output, name: 'last_conv' });
    return upToMaps.predict(x) as tf.Tensor4D;
  }

  /** Log-probabilities. `training` turns on dropout, and batch statistics in a fine-tuned backbone only. */
  forward(x: tf.Tensor4D, training = false): tf.Tensor2D {
    this.checkInput(x);
    const trainBackbone = training && this._mode === 'finetune';
    // BatchNorm updates its moving statistics in training mode, so the backbone is no longer the pretrained one.
    if (trainBackbone) this.backboneChanged = true;
    return tf.tidy(() => {
      const features = trainBackbone
        ? (this.backbone.apply(x, { training: true }) as tf.Tensor2D)
        : this.inferenceFeatures(x);
      return this.head.apply(features, { training }) as tf.Tensor2D;
    });
  }

  /** Layers models do not check the input size on apply(); a wrong-sized batch would run and mean nothing. */
  private checkInput(x: tf.Tensor4D): void {
    const size = this.info.inputSize;
    if (x.shape[1] !== size || x.shape[2] !== size || x.shape[3] !== 3) {
      throw new Error(
        `the model takes ${size}×${size}×3 images, got ${x.shape.slice(1).join('×')} (use the transforms for its inputSize, e.g. evalTransforms(preprocessing, ${size}))`,
      );
    }
  }

  /** Seeds the head's dropout mask for the next training step (the trainer derives it from seed, epoch, step). */
  setDropoutSeed(seed: number): void {
    for (const layer of this.head.layers) if (layer instanceof StepDropout) layer.stepSeed = seed;
  }

  /** The head alone, on cached features. */
  forwardHead(features: tf.Tensor2D, training = false): tf.Tensor2D {
    return this.head.apply(features, { training }) as tf.Tensor2D;
  }

  /** The variables an optimizer should update in the current mode. */
  trainableVariables(): tf.Variable[] {
    return this.trainableWeights().map((w) => w.read() as tf.Variable);
  }

  private trainableWeights(): tf.LayerVariable[] {
    const backbone =
      this._mode === 'finetune' ? this.backbone.trainableWeights.filter((w) => this.inTrainedStage(w.name)) : [];
    return [...backbone, ...this.head.trainableWeights];
  }

  /**
   * The weights training can change, in a fixed order: what a checkpoint stores and the best epoch's copy
   * restores. A feature extractor's backbone is left out: it never trains.
   */
  trainedWeights(): tf.LayerVariable[] {
    return [...(this._mode === 'finetune' ? this.backbone.weights : []), ...this.head.weights];
  }

  /**
   * What identifies the backbone's weights, for caches of its outputs: the pretrained checksum while it
   * is the pretrained one, else the SHA-256 of its own weights in layer order (shapes and bytes; not the
   * names, which TF.js numbers anew each time a model is loaded). About 0.3 s for ResNet50.
   */
  backboneKey(): string {
    if (!this.backboneChanged) return `${this.info.weightsChecksum}|pretrained`;
    const hash = crypto.createHash('sha256');
    for (const w of this.backbone.weights) {
      const data = w.read().dataSync();
      hash.update(`${w.shape.join('x')}|${w.dtype}|`);
      hash.update(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    }
    return `${hash.digest('hex')}|weights`;
  }

  /** Every weight, backbone then head, trainable or not (BatchNorm's moving statistics included). */
  allWeights(): tf.LayerVariable[] {
    return [...this.backbone.weights, ...this.head.weights];
  }

  /**
   * Parameter counts like the tutorial prints them. They differ from torchvision's 24,033,861 /
   * 525,829 because Keras' ResNet50 has biases on its convolutions and TF.js counts BatchNorm's moving
   * mean and variance as (non-trainable) weights.
   */
  paramCounts(): ParamCounts {
    const size = (ws: tf.LayerVariable[]): number =>
      ws.reduce((n, w) => n + (w.shape as number[]).reduce((a, b) => a * b, 1), 0);
    const trainable = size(this.trainableWeights());
    const total = size(this.allWeights());
    return { total, trainable, nonTrainable: total - trainable };
  }

  dispose(): void {
    this.folded?.dispose();
    this.backbone.dispose();
    this.head.dispose();
  }
}

function foldedOrNull(backbone: tf.LayersModel): FoldedBackbone | null {
  try {
    return new FoldedBackbone(backbone);
  } catch (err) {
    if (err instanceof UnfoldableNetwork) return null; // the Layers model runs it, unfolded
    throw err;
  }
}

export interface CreateModelOptions extends HeadOptions {
  classes: string[];
  mode: TrainingMode;
  weights?: WeightsSource;
  /** Square input size (default 224, the tutorial's). Smaller sizes trade accuracy for speed. */
  inputSize?: number;
}

/** ResNet50 with pretrained weights, cut at global average pooling, plus a new head for `classes`. */
export async function createBoatModel(options: CreateModelOptions): Promise<BoatModel> {
  const source = options.weights ?? defaultWeights();
  const { model, checksum } = await source.load(options.inputSize);
  const backbone = cutAtFeatures(model, source.featureLayer);
  const head = buildHead(options.classes.length, { ...options, features: backbone.outputs[0].shape[1] as number });
  const inputSize = backbone.inputs[0].shape[1] as number;
  return new BoatModel(
    backbone,
    head,
    {
      classes: options.classes,
      preprocessing: source.preprocessing,
      inputSize,
      weightsId: source.id,
      weightsChecksum: checksum,
    },
    options.mode,
  );
}

/** The model up to `layerName` (its classifier layers are disposed). */
export function cutAtFeatures(model: tf.LayersModel, layerName: string): tf.LayersModel {
  const features = model.getLayer(layerName);
  const backbone = tf.model({ inputs: model.inputs, outputs: features.output, name: 'backbone' });
  const kept = new Set(backbone.layers);
  for (const layer of model.layers) if (!kept.has(layer)) layer.dispose();
  return backbone;
}
