/**
 * The backbone as an inference network with BatchNorm folded into the convolutions.
 *
 * In inference mode BatchNorm is an affine map per channel, so a convolution followed by it is one
 * convolution with the weights w' = w·s and the bias b' = (b − μ)·s + β, s = γ/√(σ² + ε). Each
 * conv + BatchNorm pair of the backbone runs as one convolution with those weights, with the ReLU
 * after it, and in a residual block's tail the add and ReLU too, fused into it (fused-conv.ts). A zero
 * padding that only a convolution reads becomes that convolution's own padding, and one that only a max
 * pool reads, of a ReLU's output, the pool's (its values are at least 0, so a padded 0 never wins over
 * them): the padded copies of the stem's image and its first feature maps go away. The other layers (the
 * global average pool) run as they are.
 *
 * The folded weights are computed once and kept. Every inference checks that the weights they came
 * from are still the same tensors (a tf.Variable gets new data whenever it is assigned: an optimizer
 * step, BatchNorm's moving statistics, a checkpoint restore), and folds again when one changed, so a
 * fine-tune's evaluation always sees its current weights. Folding again replaces the kept tensors one
 * for one, so tf.memory().numTensors stays flat.
 */
import * as tf from '../engine/tf';

import { ConvGeometry, convBiasAddRelu } from '../engine/fused-conv';
import { isRelu, readersByTensor } from '../engine/layer-graph';

type Layer = tf.layers.Layer;

/** A backbone whose structure this module does not handle; BoatModel then runs it unfolded. */
export class UnfoldableNetwork extends Error {}

interface Node {
  inputTensors: tf.SymbolicTensor[];
  outputTensors: tf.SymbolicTensor[];
}

interface ConvInternals {
  kernel: tf.LayerVariable;
  bias?: tf.LayerVariable;
}

interface BatchNormInternals {
  epsilon: number;
  gamma?: tf.LayerVariable;
  beta?: tf.LayerVariable;
  movingMean: tf.LayerVariable;
  movingVariance: tf.LayerVariable;
}

interface FoldedStep {
  kind: 'folded';
  conv: Layer;
  batchNorm: Layer;
  geometry: ConvGeometry;
  relu: boolean;
  input: number;
  /** The residual added before the ReLU, or -1. */
  add: number;
  output: number;
}

interface LayerStep {
  kind: 'layer';
  layer: Layer;
  inputs: number[];
  output: number;
}

/** A max pool with the zero padding before it as its own padding. */
interface PoolStep {
  kind: 'pool';
  poolSize: [number, number];
  strides: [number, number];
  pad: tf.backend_util.ExplicitPadding;
  input: number;
  output: number;
}

type Step = FoldedStep | LayerStep | PoolStep;

interface FoldedWeights {
  filter: tf.Tensor4D;
  bias: tf.Tensor1D;
  /** The data of the variables folded into them, to notice when one changed. */
  sources: object[];
}

const read = (v: tf.LayerVariable): tf.Tensor => v.read();
const dataIdOf = (t: tf.Tensor): object => t.dataId;

function nodeOf(layer: Layer): Node {
  const nodes = layer.inboundNodes as unknown as Node[];
  if (nodes.length !== 1) throw new UnfoldableNetwork(`layer ${layer.name} is used ${nodes.length} times`);
  return nodes[0];
}

const config = (layer: Layer): tf.serialization.ConfigDict => layer.getConfig();

function pair(value: unknown): [number, number] {
  const v = Array.isArray(value) ? (value as number[]) : [value as number, value as number];
  return [v[0], v[1] ?? v[0]];
}

/** A Conv2D that BatchNorm can be folded into: no activation of its own, NHWC, 'same' or 'valid'. */
function foldableConv(layer: Layer): ConvGeometry | null {
  if (layer.getClassName() !== 'Conv2D') return null;
  const c = config(layer);
  if (c.activation !== 'linear' || c.dataFormat !== 'channelsLast') return null;
  if (c.padding !== 'same' && c.padding !== 'valid') return null;
  return { strides: pair(c.strides), pad: c.padding, dilations: pair(c.dilationRate ?? 1) };
}

/** A channels-last ZeroPadding2D's [[top, bottom], [left, right]], or null for any other layer. */
function zeroPadding(layer: Layer | undefined): [[number, number], [number, number]] | null {
  if (layer?.getClassName() !== 'ZeroPadding2D') return null;
  const c = config(layer);
  if (c.dataFormat !== 'channelsLast') return null;
  const p = c.padding as number | [number, number] | [[number, number], [number, number]];
  if (typeof p === 'number')
    return [
      [p, p],
      [p, p],
    ];
  return [pair(p[0]), pair(p[1])];
}

/** A channels-last MaxPooling2D without padding of its own: its window and strides. */
function validMaxPool(layer: Layer): { poolSize: [number, number]; strides: [number, number] } | null {
  if (layer.getClassName() !== 'MaxPooling2D') return null;
  const c = config(layer);
  if (c.padding !== 'valid' || c.dataFormat !== 'channelsLast') return null;
  return { poolSize: pair(c.poolSize), strides: pair(c.strides ?? c.poolSize) };
}

const explicit = ([h, w]: [[number, number], [number, number]]): tf.backend_util.ExplicitPadding => [
  [0, 0],
  h,
  w,
  [0, 0],
];

function isLastAxisBatchNorm(layer: Layer): boolean {
  if (layer.getClassName() !== 'BatchNormalization') return false;
  const axis = config(layer).axis as number | number[];
  const axes = Array.isArray(axis) ? axis : [axis];
  return axes.length === 1 && (axes[0] === -1 || axes[0] === 3);
}

const inputsOf = (step: Step): number[] =>
  step.kind === 'folded'
    ? [step.input, ...(step.add >= 0 ? [step.add] : [])]
    : step.kind === 'pool'
      ? [step.input]
      : step.inputs;

/**
 * The backbone's layers as steps over numbered values, with conv + BatchNorm (+ add) (+ ReLU) groups
 * as one folded step each. Throws when the network has a shape this does not handle (a layer used
 * twice, several inputs or outputs); BoatModel then keeps the unfolded network.
 */
class Plan {
  readonly steps: Step[] = [];
  readonly input: number;
  readonly features: number;
  readonly maps: number;
  /** How many steps read each value. */
  readonly reads: number[];

  constructor(backbone: tf.LayersModel) {
    if (backbone.inputs.length !== 1 || backbone.outputs.length !== 1)
      throw new UnfoldableNetwork('not one input and output');
    const slots = new Map<number, number>();
    const slot = (t: tf.SymbolicTensor): number => {
      let s = slots.get(t.id);
      if (s === undefined) slots.set(t.id, (s = slots.size));
      return s;
    };
    this.input = slot(backbone.inputs[0]);
    const layers = backbone.layers.filter((l) => l.getClassName() !== 'InputLayer');
    for (const layer of layers) {
      if (nodeOf(layer).outputTensors.length !== 1)
        throw new UnfoldableNetwork(`layer ${layer.name} has several outputs`);
    }
    const consumers = readersByTensor(layers);
    const outputId = backbone.outputs[0].id;
    const only = (layer: Layer): Layer | null => {
      const out = nodeOf(layer).outputTensors[0];
      const users = consumers.get(out.id) ?? [];
      return users.length === 1 && out.id !== outputId ? users[0] : null;
    };
    const producers = new Map<number, Layer>(layers.map((l) => [nodeOf(l).outputTensors[0].id, l]));
    // A zero padding that only `reader` reads: the layer and its padding, else null.
    const paddingOf = (reader: Layer) => {
      const layer = producers.get(nodeOf(reader).inputTensors[0].id);
      const padding = layer && only(layer) === reader ? zeroPadding(layer) : null;
      return padding && layer ? { layer, padding } : null;
    };
    // Each group's step runs where its last layer is: by then the residual is computed too.
    const groupAt = new Map<Layer, Step>();
    const grouped = new Set<Layer>();
    for (const conv of layers) {
      let geometry = foldableConv(conv);
      const batchNorm = geometry ? only(conv) : null;
      if (!geometry || !batchNorm || !isLastAxisBatchNorm(batchNorm)) continue;
      const members = [conv, batchNorm];
      let input = nodeOf(conv).inputTensors[0];
      const padded = geometry.pad === 'valid' ? paddingOf(conv) : null;
      if (padded) {
        geometry = { ...geometry, pad: explicit(padded.padding) };
        input = nodeOf(padded.layer).inputTensors[0];
        members.push(padded.layer);
      }
      let tail = batchNorm;
      let add = -1;
      const next = only(batchNorm);
      if (next?.getClassName() === 'Add' && !grouped.has(next)) {
        const inputs = nodeOf(next).inputTensors;
        const own = nodeOf(batchNorm).outputTensors[0].id;
        if (inputs.length === 2) {
          add = slot(inputs[0].id === own ? inputs[1] : inputs[0]);
          members.push(next);
          tail = next;
        }
      }
      const after = only(tail);
      const relu = after !== null && isRelu(after);
      if (relu) {
        members.push(after);
        tail = after;
      }
      members.forEach((m) => grouped.add(m));
      groupAt.set(tail, {
        kind: 'folded',
        conv,
        batchNorm,
        geometry,
        relu,
        input: slot(input),
        add,
        output: slot(nodeOf(tail).outputTensors[0]),
      });
    }
    for (const pool of layers) {
      const window = validMaxPool(pool);
      const padded = window ? paddingOf(pool) : null;
      const source = padded && producers.get(nodeOf(padded.layer).inputTensors[0].id);
      if (!window || !padded || !source || !isRelu(source)) continue;
      grouped.add(padded.layer).add(pool);
      groupAt.set(pool, {
        kind: 'pool',
        ...window,
        pad: explicit(padded.padding),
        input: slot(nodeOf(padded.layer).inputTensors[0]),
        output: slot(nodeOf(pool).outputTensors[0]),
      });
    }
    for (const layer of layers) {
      const group = groupAt.get(layer);
      if (group) this.steps.push(group);
      else if (!grouped.has(layer)) {
        const node = nodeOf(layer);
        this.steps.push({
          kind: 'layer',
          layer,
          inputs: node.inputTensors.map(slot),
          output: slot(node.outputTensors[0]),
        });
      }
    }
    this.features = slot(backbone.outputs[0]);
    // The last stage's feature maps: the input of the final (global pooling) layer, as Grad-CAM wants.
    this.maps = slot(nodeOf(layers[layers.length - 1]).inputTensors[0]);
    this.reads = new Array<number>(slots.size).fill(0);
    // Every step reads only what earlier steps wrote, and both outputs are written by one.
    const written = new Set<number>([this.input]);
    for (const step of this.steps) {
      for (const s of inputsOf(step)) {
        if (!written.has(s)) throw new UnfoldableNetwork(`a step reads a value before it is computed`);
        this.reads[s]++;
      }
      written.add(step.output);
    }
    if (!written.has(this.features) || !written.has(this.maps))
      throw new UnfoldableNetwork('an output is inside a folded group');
  }
}

export class FoldedBackbone {
  private readonly plan: Plan;
  private weights: Array<FoldedWeights | null>;

  /** Throws when the backbone has a structure this does not handle (see Plan). */
  constructor(backbone: tf.LayersModel) {
    this.plan = new Plan(backbone);
    this.weights = this.plan.steps.map(() => null);
    this.refresh();
  }

  /** Folds again each pair whose weights changed since (tensors replaced one for one). */
  refresh(): void {
    this.plan.steps.forEach((step, i) => {
      if (step.kind !== 'folded') return;
      const sources = sourcesOf(step);
      const kept = this.weights[i];
      if (kept && kept.sources.every((d, k) => d === dataIdOf(sources[k]))) return;
      const folded = fold(step, sources);
      if (kept) tf.dispose([kept.filter, kept.bias]);
      this.weights[i] = folded;
    });
  }

  /** The pooled features [n, 2048], as backbone.apply(x, { training: false }) computes them. */
  features(x: tf.Tensor4D): tf.Tensor2D {
    return this.run(x, this.plan.features) as tf.Tensor2D;
  }

  /** The last stage's feature maps [n, h, w, 2048] (the global average pool's input). */
  maps(x: tf.Tensor4D): tf.Tensor4D {
    return this.run(x, this.plan.maps) as tf.Tensor4D;
  }

  private run(x: tf.Tensor4D, target: number): tf.Tensor {
    this.refresh();
    const { plan } = this;
    const values: Array<tf.Tensor | null> = new Array<tf.Tensor | null>(plan.reads.length).fill(null);
    const left = plan.reads.slice();
    values[plan.input] = x;
    // Intermediate values are freed once their last reader ran, as LayersModel.apply does.
    const release = (s: number): void => {
      if (--left[s] === 0 && s !== plan.input && s !== target) {
        values[s]!.dispose();
        values[s] = null;
      }
    };
    try {
      for (let i = 0; i < plan.steps.length && values[target] === null; i++) {
        const step = plan.steps[i];
        if (step.kind === 'folded') {
          const { filter, bias } = this.weights[i]!;
          const add = step.add >= 0 ? (values[step.add] as tf.Tensor4D) : undefined;
          // The residual's last reader may write its result into the residual's buffer.
          const addRead = step.add < 0 || left[step.add] > 1 || step.add === plan.input || step.add === target;
          values[step.output] = convBiasAddRelu(
            values[step.input] as tf.Tensor4D,
            filter,
            bias,
            step.geometry,
            step.relu,
            add,
            addRead,
          );
        } else if (step.kind === 'pool') {
          const x = values[step.input] as tf.Tensor4D;
          values[step.output] = tf.maxPool(x, step.poolSize, step.strides, step.pad);
        } else {
          const inputs = step.inputs.map((s) => values[s]!);
          values[step.output] = tf.tidy(
            () => step.layer.apply(inputs.length === 1 ? inputs[0] : inputs, { training: false }) as tf.Tensor,
          );
        }
        inputsOf(step).forEach(release);
      }
    } catch (err) {
      values.forEach((v, s) => s !== plan.input && v?.dispose());
      throw err;
    }
    const out = values[target]!;
    values.forEach((v, s) => s !== plan.input && s !== target && v?.dispose());
    return out;
  }

  dispose(): void {
    for (const w of this.weights) if (w) tf.dispose([w.filter, w.bias]);
    this.weights = this.weights.map(() => null);
  }
}

/** The tensors a folded pair is computed from, in a fixed order (absent ones as null placeholders). */
function sourcesOf(step: FoldedStep): tf.Tensor[] {
  const conv = step.conv as unknown as ConvInternals;
  const bn = step.batchNorm as unknown as BatchNormInternals;
  return [conv.kernel, conv.bias, bn.gamma, bn.beta, bn.movingMean, bn.movingVariance]
    .filter((v): v is tf.LayerVariable => v !== undefined && v !== null)
    .map(read);
}

function fold(step: FoldedStep, sources: tf.Tensor[]): FoldedWeights {
  const conv = step.conv as unknown as ConvInternals;
  const bn = step.batchNorm as unknown as BatchNormInternals;
  const { filter, bias } = tf.tidy(() => {
    const kernel = read(conv.kernel) as tf.Tensor4D;
    const channels = kernel.shape[3];
    const gamma = bn.gamma ? read(bn.gamma) : tf.ones([channels]);
    const beta = bn.beta ? read(bn.beta) : tf.zeros([channels]);
    const convBias = conv.bias ? read(conv.bias) : tf.zeros([channels]);
    const scale = tf.mul(gamma, tf.rsqrt(tf.add(read(bn.movingVariance), bn.epsilon)));
    const filter = tf.mul<tf.Tensor4D>(kernel, scale);
    const bias = tf.add<tf.Tensor1D>(tf.mul(tf.sub(convBias, read(bn.movingMean)), scale), beta);
    return { filter, bias };
  });
  // Kept: a refold runs inside whatever tidy the inference is in (evaluation's), which would dispose them.
  return { filter: tf.keep(filter), bias: tf.keep(bias), sources: sources.map(dataIdOf) };
}
