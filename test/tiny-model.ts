// A tiny conv net with the BoatModel interface (8×8 input, one conv + BatchNorm + ReLU backbone, the real
// head): convolutions small enough that training or differentiating a whole backbone takes milliseconds.
import * as tf from '../lib/engine/tf';

import { BatchSource, BoatModel, buildHead, TrainBatch, TrainingMode } from '../lib';

/** A conv (or `convs` of them) + BatchNorm + ReLU + pool backbone with the tutorial's head: every kernel ResNet50 uses, in milliseconds. */
export function tinyModel(
  options: { classes?: number; mode?: TrainingMode; dropout?: number; convs?: number } = {},
): BoatModel {
  const { classes = 3, mode = 'finetune', dropout = 0, convs = 1 } = options;
  const input = tf.input({ shape: [8, 8, 3] });
  // More than one convolution gives the backward pass an input gradient too (the first layer needs none).
  let x = input;
  for (let i = 0; i < convs; i++)
    x = tf.layers
      .conv2d({
        filters: 4,
        kernelSize: 3,
        padding: 'same',
        kernelInitializer: tf.initializers.glorotUniform({ seed: 1 + i }),
      })
      .apply(x) as tf.SymbolicTensor;
  x = tf.layers.batchNormalization().apply(x) as tf.SymbolicTensor;
  x = tf.layers.reLU().apply(x) as tf.SymbolicTensor;
  x = tf.layers.globalAveragePooling2d({}).apply(x) as tf.SymbolicTensor;
  const backbone = tf.model({ inputs: input, outputs: x });
  const head = buildHead(classes, { features: 4, hidden: 6, dropout, seed: 2 });
  return new BoatModel(
    backbone,
    head,
    {
      classes: Array.from({ length: classes }, (_, i) => `class${i}`),
      preprocessing: 'caffe',
      inputSize: 8,
      weightsId: 'tiny',
      weightsChecksum: 'x',
    },
    mode,
  );
}

/**
 * 24 images of 8 × 8 whose class is the brightest colour channel: learnable in a few epochs. `ramp` adds a
 * left-to-right gradient, so that a pasted box shows.
 */
export class ColourSource implements BatchSource {
  readonly size = 24;
  constructor(
    readonly batchSize: number,
    readonly options: { brightness?: number; ramp?: boolean } = {},
  ) {}
  async *batches(epoch: number): AsyncGenerator<TrainBatch> {
    const { brightness = 50, ramp = false } = this.options;
    for (let start = 0; start < this.size; start += this.batchSize) {
      const n = Math.min(this.batchSize, this.size - start);
      const labels = Array.from({ length: n }, (_, i) => (start + i + epoch) % 3);
      const x = tf.tidy(() => {
        const scale = ramp ? tf.linspace(0.5, 1.5, 8).reshape([1, 8, 1]) : tf.scalar(1);
        return tf.stack(
          labels.map((c, i) =>
            tf
              .oneHot(tf.fill([8, 8], c, 'int32'), 3)
              .toFloat()
              .mul(scale)
              .mul(brightness + i),
          ),
        );
      });
      yield { x, y: tf.tensor1d(labels, 'int32') };
    }
  }
}

/** Every weight of the backbone and the head, flattened. */
export async function weightsOf(model: BoatModel): Promise<number[]> {
  const out: number[] = [];
  for (const w of [...model.backbone.weights, ...model.head.weights]) out.push(...(await w.read().data()));
  return out;
}
