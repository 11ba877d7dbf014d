/**
 * A backward pass that frees memory as it goes.
 *
 * tfjs 4.22's Engine.gradients runs the whole backward pass in one tidy scope: the gradient of
 * every intermediate tensor, everything a custom gradient allocates, and every tensor saved for
 * the backward pass stay alive until the last layer is done. On ResNet50 that doubles the peak
 * memory of a train step, and the wasm heap (4 GB at most) then cannot hold a batch of 8.
 *
 * This replacement walks the same filtered tape in the same order with the same arithmetic, and
 * after each node it disposes what no later node can read: the gradients of that node's outputs
 * (each tensor is produced by exactly one node, and the tape is in topological order), the node's
 * own temporaries, and, for first-order gradients, the tensors the node saved. The tape filter is
 * tfjs' getFilteredNodesXToY (tape.ts, Apache-2.0), which the package does not export.
 *
 * Where a tensor feeds several readers its gradient is the sum of theirs, which tfjs adds up as the
 * parts arrive. A kernel whose gradient can take the parts instead (registerSummedGradient) gets them
 * unsummed, so that the add and its own gradient's pass can be one kernel.
 *
 * Higher-order gradients (a gradient taken inside another) keep tfjs' own implementation.
 */
import * as tf from './tf';

/**
 * A kernel's gradient given its output's gradient as the parts it is the sum of, in the order they
 * arrived (their sum in that order is what the kernel's plain gradient would be given), and the tensors
 * the kernel saved.
 */
export type SummedGradient = (parts: tf.Tensor[], saved: tf.Tensor[]) => Record<string, () => tf.Tensor>;

const summedGradients = new Map<string, SummedGradient>();
let summing = true;

/** Registers the gradient of a one-output kernel that takes its output's gradient unsummed. */
export function registerSummedGradient(kernelName: string, gradient: SummedGradient): void {
  summedGradients.set(kernelName, gradient);
}

/** Turns summed gradients on or off (on by default; off, every gradient is added up as it arrives), for comparisons; returns whether they were on. */
export function setSummedGradients(on: boolean): boolean {
  const was = summing;
  summing = on;
  return was;
}

/** Whether the backward pass hands summed gradients their parts (on, and a kernel has registered one). */
export function summedGradientsOn(): boolean {
  return summing && summedGradients.size > 0;
}

interface TapeNode {
  id: number;
  kernelName: string;
  inputs: Record<string, tf.Tensor>;
  outputs: tf.Tensor[];
  gradient?: (dys: tf.Tensor[]) => Record<string, () => tf.Tensor>;
  saved?: tf.Tensor[];
}

interface EngineInternals {
  state: { activeTape: TapeNode[] | null; gradientDepth: number };
  startTape(): void;
  endTape(): void;
  scopedRun<T>(start: () => void, end: () => void, f: () => T): T;
  tidy<T extends tf.TensorContainer>(name: string | (() => T), f?: () => T): T;
  gradients(
    f: () => tf.Tensor,
    xs: tf.Tensor[],
    dy?: tf.Tensor,
    allowNoGradients?: boolean,
  ): { value: tf.Tensor; grads: tf.Tensor[] };
}

/** The nodes on a path from some x to y, with inputs pruned to those that depend on an x. */
function nodesFromXToY(tape: TapeNode[], xs: tf.Tensor[], y: tf.Tensor): TapeNode[] {
  const fromX = new Set<number>(xs.map((x) => x.id));
  const nodesFromX = new Set<number>();
  for (const node of tape) {
    if (Object.values(node.inputs).some((input) => fromX.has(input.id))) {
      for (const output of node.outputs) fromX.add(output.id);
      nodesFromX.add(node.id);
    }
  }
  const leadsToY = new Set<number>([y.id]);
  const nodesToY = new Set<number>();
  for (let i = tape.length - 1; i >= 0; i--) {
    const node = tape[i];
    if (node.outputs.some((output) => leadsToY.has(output.id))) {
      for (const input of Object.values(node.inputs)) leadsToY.add(input.id);
      nodesToY.add(node.id);
    }
  }
  const filtered: TapeNode[] = [];
  for (const node of tape) {
    if (!nodesFromX.has(node.id) || !nodesToY.has(node.id)) continue;
    const inputs: Record<string, tf.Tensor> = {};
    for (const [name, input] of Object.entries(node.inputs)) if (fromX.has(input.id)) inputs[name] = input;
    filtered.push({ ...node, inputs, outputs: node.outputs });
  }
  return filtered;
}

function leanGradients(
  engine: EngineInternals,
  f: () => tf.Tensor,
  xs: tf.Tensor[],
  dy: tf.Tensor | undefined,
  allowNoGradients: boolean,
): { value: tf.Tensor; grads: tf.Tensor[] } {
  if (dy != null && dy.dtype !== 'float32') throw new Error(`dy must have 'float32' dtype, but has '${dy.dtype}'`);
  const y = engine.scopedRun(
    () => engine.startTape(),
    () => engine.endTape(),
    () => engine.tidy('forward', f),
  );
  if (!(y instanceof tf.Tensor)) throw new Error('The result y returned by f() must be a tensor.');
  const tape = engine.state.activeTape ?? [];
  const filtered = nodesFromXToY(tape, xs, y);
  if (!allowNoGradients && filtered.length === 0 && xs.length > 0) {
    throw new Error(
      'Cannot compute gradient of y=f(x) with respect to x. Make sure that the f you passed encloses all operations that lead from x to y.',
    );
  }
  return engine.tidy('backward', () => {
    const keep = new Set<number>(xs.map((x) => x.id));
    const grads = new Map<number, tf.Tensor>();
    grads.set(y.id, dy ?? tf.onesLike(y));
    // Gradients left as parts (after the first, in grads) for the node that made them to sum: a kernel
    // with a summed gradient, or an Identity of its output that nothing else reads (tfjs-layers clones
    // what a layer passes through), which hands the parts on.
    const readers = new Map<number, number>();
    for (const node of filtered)
      for (const input of Object.values(node.inputs)) readers.set(input.id, (readers.get(input.id) ?? 0) + 1);
    const summedBy = new Map<number, SummedGradient | 'hand on'>();
    for (const node of filtered) {
      if (node.outputs.length !== 1 || keep.has(node.outputs[0].id)) continue;
      const summed = summing ? summedGradients.get(node.kernelName) : undefined;
      const [input, ...others] = Object.values(node.inputs);
      if (summed) summedBy.set(node.outputs[0].id, summed);
      else if (
        node.kernelName === tf.Identity &&
        input &&
        others.length === 0 &&
        summedBy.has(input.id) &&
        readers.get(input.id) === 1
      )
        summedBy.set(node.outputs[0].id, 'hand on');
    }
    const parts = new Map<number, tf.Tensor[]>();
    for (let i = filtered.length - 1; i >= 0; i--) {
      const node = filtered[i];
      if (!node.gradient)
        throw new Error(`Cannot compute gradient: gradient function not found for ${node.kernelName}.`);
      const names = Object.keys(node.inputs);
      const zeros: tf.Tensor[] = []; // outputs that no path to y reached get a zero gradient, as in tfjs
      const dys = node.outputs.map((o) => grads.get(o.id) ?? zeros[zeros.push(tf.zeros(o.shape, o.dtype)) - 1]);
      // tfjs' gradient of Identity is cast(dy, 'float32'): for a float32 dy, a copy (on wasm, of an
      // activation, 53 in a ResNet50 step). Its input's gradient is then the same tensor, handed on rather
      // than copied, when this node alone owns it: not the caller's dy, nor the gradient of a returned x.
      const handOn =
        node.kernelName === tf.Identity &&
        names.length === 1 &&
        zeros.length === 0 &&
        dys.length === 1 &&
        dys[0].dtype === 'float32' &&
        dys[0] !== dy &&
        !keep.has(node.outputs[0].id);
      const more = parts.get(node.outputs[0]?.id);
      const summed = more && summedBy.get(node.outputs[0].id);
      if (summed === 'hand on') {
        const input = Object.values(node.inputs)[0];
        grads.set(input.id, dys[0]);
        parts.set(input.id, more!);
        grads.delete(node.outputs[0].id);
        parts.delete(node.outputs[0].id);
        if (engine.state.gradientDepth === 0) for (const t of node.saved ?? []) t.dispose();
        continue;
      }
      // One scope per node: whatever its gradient function allocates besides the results is freed now.
      const dxs = handOn
        ? dys
        : tf.tidy(() => {
            const inputGradients = summed ? summed([dys[0], ...more], node.saved ?? []) : node.gradient!(dys);
            return names.map((name) => {
              if (!(name in inputGradients))
                throw new Error(
                  `Cannot backprop through input ${name}. Available gradients found: ${Object.keys(inputGradients)}.`,
                );
              return inputGradients[name]();
            });
          });
      names.forEach((name, k) => {
        const dx = dxs[k];
        const x = node.inputs[name];
        if (dx.dtype !== 'float32')
          throw new Error(
            `Error in gradient for op ${node.kernelName}. The gradient of input ${name} must have 'float32' dtype, but has '${dx.dtype}'`,
          );
        if (!tf.util.arraysEqual(dx.shape, x.shape))
          throw new Error(
            `Error in gradient for op ${node.kernelName}. The gradient of input '${name}' has shape '${dx.shape}', which does not match the shape of the input '${x.shape}'`,
          );
        const previous = grads.get(x.id);
        if (previous == null) {
          grads.set(x.id, dx);
        } else if (summedBy.has(x.id)) {
          parts.set(x.id, [...(parts.get(x.id) ?? []), dx]);
        } else {
          grads.set(x.id, tf.add(previous, dx));
          previous.dispose();
          dx.dispose();
        }
      });
      if (more) {
        tf.dispose(more);
        parts.delete(node.outputs[0].id);
      }
      for (const output of node.outputs) {
        const g = grads.get(output.id);
        if (g == null || keep.has(output.id)) continue;
        grads.delete(output.id);
        if (g !== dy && !handOn) g.dispose();
      }
      tf.dispose(zeros);
      if (engine.state.gradientDepth === 0) for (const t of node.saved ?? []) t.dispose();
    }
    if (engine.state.gradientDepth === 0) {
      for (const node of tape) for (const t of node.saved ?? []) t.dispose();
      engine.state.activeTape = null;
    }
    return { value: y, grads: xs.map((x) => grads.get(x.id)!) };
  });
}

let installed = false;

/** Replaces tf.engine().gradients (used by tf.grad(s), variableGrads and optimizers). Idempotent. */
export function installLeanBackprop(): void {
  if (installed) return;
  installed = true;
  const engine = tf.engine() as unknown as EngineInternals;
  const original = engine.gradients.bind(engine);
  engine.gradients = (f, xs, dy, allowNoGradients = false) =>
    engine.state.gradientDepth > 0
      ? original(f, xs, dy, allowNoGradients)
      : leanGradients(engine, f, xs, dy, allowNoGradients);
}
