/**
 * Where a train step's and a forward pass's time goes (`boat bench --profile`): the wall time of every
 * TF.js kernel call, summed by kernel, and oneDNN's own timing of the primitives inside the native kernels.
 *
 * Kernel times: every kernel registered for the active backend is wrapped (and restored afterwards). The
 * wasm backend computes synchronously, so the wall time around a kernelFunc is that kernel's time. A kernel
 * may run other kernels through the engine; each call's time is counted exclusive of the kernels it
 * called, so the kernels' times add up to no more than the step's, and the rest of the step (JavaScript
 * between kernels: the tape, the gradient bookkeeping, the optimizer's glue) is its own row.
 *
 * oneDNN: ONEDNN_VERBOSE must be set before the library loads, so the profile runs in a child process
 * (profile-child.ts) with ONEDNN_VERBOSE=1. The child prints a marker line whenever a kernel starts or
 * returns to its caller, so each oneDNN line of its output (onednn-verbose.ts) is charged to the TF.js kernel
 * that ran it, and the kernel table and oneDNN's breakdown come from the same steps.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as readline from 'node:readline';
import * as tf from '../engine/tf';

import type { BoatModel } from '../model';
import { fineTuneStepper } from './model';
import { addExec, parseOnednnVerboseLine, sumTotals, type OnednnTotals } from './onednn-verbose';

export type KernelCategory =
  | 'convolution'
  | 'matrix products'
  | 'BatchNorm'
  | 'elementwise/activation'
  | 'pooling'
  | 'reductions'
  | 'reshape/transpose/copies'
  | 'other';

const CATEGORY_OF: Array<[KernelCategory, RegExp]> = [
  [
    'convolution',
    /^(Conv2D|FusedConv2D|Conv2DBackprop(Input|Filter)|BoatConv2DAdd|Conv3D.*|(Fused)?DepthwiseConv2D.*|DepthwiseConv2dNative.*|Dilation2D.*)$/,
  ],
  ['matrix products', /^(BatchMatMul|_FusedMatMul|MatMul)$/],
  ['BatchNorm', /^(FusedBatchNorm|BoatBatchNorm.*)$/],
  ['pooling', /^(MaxPool|AvgPool)(Grad|3D|3DGrad|WithArgmax)?$/],
  ['reductions', /^(Sum|Mean|Max|Min|Prod|All|Any|ArgMax|ArgMin)$/],
  [
    'reshape/transpose/copies',
    /^(Reshape|Transpose|Identity|Pad|PadV2|MirrorPad|Slice|StridedSlice|Concat|Tile|Reverse|Cast|Fill|ZerosLike|OnesLike|Pack|Unpack|SplitV|GatherV2|GatherNd|ExpandDims|BroadcastTo|SpaceToBatchND|BatchToSpaceND|DepthToSpace)$/,
  ],
  [
    'elementwise/activation',
    /^(Relu|BoatReluGrad|Relu6|Elu|EluGrad|LeakyRelu|Prelu|Selu|Sigmoid|Tanh|Softplus|Softmax|LogSoftmax|Step|Add|AddN|Sub|Multiply|RealDiv|FloorDiv|Div|Neg|Abs|Sign|Square|SquaredDifference|Sqrt|Rsqrt|Exp|Expm1|Log|Log1p|Pow|Maximum|Minimum|ClipByValue|Greater|GreaterEqual|Less|LessEqual|Equal|NotEqual|LogicalAnd|LogicalOr|LogicalNot|Select|Reciprocal|Floor|Ceil|Round|IsNan|IsInf|Erf|Sin|Cos|Tan|Mod|Atan2|IsFinite|LogicalXor)$/,
  ],
];

export function kernelCategory(kernel: string): KernelCategory {
  return CATEGORY_OF.find(([, pattern]) => pattern.test(kernel))?.[0] ?? 'other';
}

export interface KernelStats {
  calls: number;
  /** Exclusive wall time: the kernel's own, less that of the kernels it ran. */
  ms: number;
}

export interface KernelTiming {
  /** Totals since timeKernels, by kernel name. */
  readonly stats: Map<string, KernelStats>;
  /** Registers the original kernels again (the same config objects). */
  restore(): void;
}

/**
 * Wraps every kernel registered for `backend` so that each call's exclusive wall time is summed by kernel
 * name. `onEnter` hears the kernel that runs from now on whenever that changes (a call starts, or returns to
 * the kernel that made it: null at the top). Call restore() when done (also on error).
 */
export function timeKernels(backend: string, onEnter?: (kernel: string | null) => void): KernelTiming {
  const originals = tf.getKernelsForBackend(backend);
  const stats = new Map<string, KernelStats>();
  // The calls in progress, innermost last, each with the time its nested calls took.
  const stack: Array<{ kernel: string; children: number }> = [];
  const wrap = (config: tf.KernelConfig): tf.KernelConfig => {
    const { kernelName, kernelFunc } = config;
    let entry = stats.get(kernelName);
    if (!entry) stats.set(kernelName, (entry = { calls: 0, ms: 0 }));
    const totals = entry;
    return {
      ...config,
      kernelFunc: (args) => {
        onEnter?.(kernelName);
        const frame = { kernel: kernelName, children: 0 };
        stack.push(frame);
        const start = performance.now();
        try {
          return kernelFunc(args);
        } finally {
          const elapsed = performance.now() - start;
          stack.pop();
          totals.calls++;
          totals.ms += elapsed - frame.children;
          const parent = stack[stack.length - 1];
          if (parent) parent.children += elapsed;
          onEnter?.(parent ? parent.kernel : null);
        }
      },
    };
  };
  const swap = (configs: tf.KernelConfig[]): void => {
    for (const c of configs) {
      const now = tf.getKernel(c.kernelName, backend);
      if (now === c) continue;
      if (now) tf.unregisterKernel(c.kernelName, backend);
      tf.registerKernel(c);
    }
  };
  const wrapped = originals.map(wrap);
  let restored = false;
  try {
    swap(wrapped);
  } catch (err) {
    swap(originals);
    throw err;
  }
  return {
    stats,
    restore: () => {
      if (restored) return;
      restored = true;
      swap(originals);
    },
  };
}

export interface KernelRow {
  kernel: string;
  category: KernelCategory;
  /** Per step. */
  calls: number;
  ms: number;
  /** Of the step's wall time. */
  share: number;
}

export interface CategoryRow {
  category: KernelCategory | 'untracked';
  ms: number;
  share: number;
}

export interface StepProfile {
  steps: number;
  /** Mean wall time of a step, with the kernels wrapped. */
  stepMs: number;
  /** By time, largest first; kernels that did not run are left out. */
  kernels: KernelRow[];
  /** By time, largest first, the untracked remainder among them. */
  categories: CategoryRow[];
  /** The step's time outside every kernel: JavaScript glue, the tape, gradient bookkeeping. */
  untrackedMs: number;
}

/** `steps` calls of `step` with every kernel of the active backend timed; the kernels are restored after. */
export async function profileSteps(
  step: () => Promise<void> | void,
  steps: number,
  onEnter?: (kernel: string | null) => void,
): Promise<StepProfile> {
  const timing = timeKernels(tf.getBackend(), onEnter);
  let wallMs = 0;
  try {
    for (let i = 0; i < steps; i++) {
      const start = performance.now();
      await step();
      wallMs += performance.now() - start;
    }
  } finally {
    timing.restore();
  }
  return summarise(timing.stats, steps, wallMs / steps);
}

export function summarise(stats: Map<string, KernelStats>, steps: number, stepMs: number): StepProfile {
  const share = (ms: number): number => (stepMs > 0 ? ms / stepMs : 0);
  const kernels = [...stats]
    .filter(([, s]) => s.calls > 0)
    .map(([kernel, s]): KernelRow => {
      const ms = s.ms / steps;
      return { kernel, category: kernelCategory(kernel), calls: s.calls / steps, ms, share: share(ms) };
    })
    .sort((a, b) => b.ms - a.ms);
  const tracked = kernels.reduce((sum, k) => sum + k.ms, 0);
  const untrackedMs = Math.max(0, stepMs - tracked);
  const byCategory = new Map<CategoryRow['category'], number>([['untracked', untrackedMs]]);
  for (const k of kernels) byCategory.set(k.category, (byCategory.get(k.category) ?? 0) + k.ms);
  const categories = [...byCategory]
    .map(([category, ms]) => ({ category, ms, share: share(ms) }))
    .sort((a, b) => b.ms - a.ms);
  return { steps, stepMs, kernels, categories, untrackedMs };
}

export interface Workload {
  step(): Promise<void>;
  dispose(): void;
}

/** A fine-tune step (forward, backward, SGD with momentum) on a fixed random batch. */
export function trainWorkload(model: BoatModel, batch: number, size: number): Workload {
  const stepper = fineTuneStepper(model, batch, size);
  return { step: async () => stepper.step(), dispose: () => stepper.dispose() };
}

/** A forward pass as inference runs it (BatchNorm folded where the model folds). */
export function forwardWorkload(model: BoatModel, batch: number, size: number): Workload {
  const x = tf.randomNormal<tf.Rank.R4>([batch, size, size, 3], 0, 50, 'float32', 1);
  return {
    step: async () => {
      const out = model.forward(x);
      await out.data();
      out.dispose();
    },
    dispose: () => x.dispose(),
  };
}

export type WorkloadName = 'train' | 'forward';

export interface ProfileOptions {
  batch: number;
  size: number;
  /** Profiled steps of each workload, after one warm-up step. */
  steps: Record<WorkloadName, number>;
}

/** What the child reports of one workload in one precision; the oneDNN lines are charged by the parent. */
export interface ChildSection {
  precision: 'fp32' | 'bf16';
  workload: WorkloadName;
  profile: StepProfile;
  /** One step's wall time just before, with nothing wrapped: what profiling adds is the difference. */
  plainStepMs: number;
}

export interface ChildResult {
  backend: string;
  sections: ChildSection[];
  /** Why a workload or precision was left out. */
  skipped: string[];
}

/** oneDNN's time inside one TF.js kernel, per step. */
export interface OnednnKernelRow {
  kernel: string;
  /** The kernel's exclusive wall time (from the kernel table). */
  wallMs: number;
  /** oneDNN's exec time by primitive kind (reorders by what they convert). */
  byKind: OnednnTotals;
  onednnMs: number;
  /** Wall time outside oneDNN's primitives: N-API, the addon's own loops and copies, the JS around them. */
  outsideMs: number;
}

export interface OnednnProfile {
  /** By wall time, largest first: the kernels that ran oneDNN primitives. */
  kernels: OnednnKernelRow[];
  /** Per step, by primitive kind, over all kernels. */
  byKind: OnednnTotals;
  totalMs: number;
  /** Exec time of primitives run outside any TF.js kernel (expected 0). */
  outsideKernelsMs: number;
  /** oneDNN's convolutions by direction and geometry, slowest first (per step). */
  convolutions: OnednnConvolutionRow[];
}

export interface OnednnConvolutionRow {
  propKind: string;
  problem: string;
  implementation: string;
  /** Per step: layers of this geometry times their calls. */
  calls: number;
  ms: number;
}

export interface ProfileSection extends ChildSection {
  onednn: OnednnProfile;
}

export interface ProfileResult {
  backend: string;
  batch: number;
  size: number;
  sections: ProfileSection[];
  skipped: string[];
}

/** What `--json` writes: the backend line once, at the top as `boat bench --json` has it, the rest under `profile`. */
export function profileJson(result: ProfileResult): { backend: string; profile: Omit<ProfileResult, 'backend'> } {
  const { backend, ...profile } = result;
  return { backend, profile };
}

/** The prefix of the child's own lines on its stdout (markers and the result). */
export const MARKER = 'boat_profile';

const CHILD = path.join(__dirname, 'profile-child.js');

/**
 * Runs the profile in a child process with ONEDNN_VERBOSE=1 and charges oneDNN's lines to the kernels.
 * The child's stdout is a file, not a pipe: a pipe is non-blocking there, and oneDNN's printf would lose
 * lines (and a synchronous write fail) whenever it is full.
 */
export async function benchProfile(options: ProfileOptions): Promise<ProfileResult> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'boat-profile-'));
  try {
    const log = path.join(dir, 'stdout.txt');
    const fd = fs.openSync(log, 'w');
    let code: number | null;
    try {
      const child = spawn(process.execPath, [CHILD, JSON.stringify(options)], {
        env: { ...process.env, ONEDNN_VERBOSE: '1' },
        stdio: ['ignore', fd, 'inherit'],
      });
      code = await new Promise<number | null>((resolve, reject) => {
        child.on('error', reject);
        child.on('close', resolve);
      });
    } finally {
      fs.closeSync(fd);
    }
    const charger = new OnednnCharger();
    let result: ChildResult | undefined;
    for await (const line of readline.createInterface({ input: fs.createReadStream(log), crlfDelay: Infinity })) {
      if (line.startsWith(`${MARKER},result,`))
        result = JSON.parse(line.slice(`${MARKER},result,`.length)) as ChildResult;
      else charger.line(line);
    }
    if (code !== 0 || !result) throw new Error(`the profile's child process failed (exit code ${code})`);
    const done = result;
    return {
      backend: done.backend,
      batch: options.batch,
      size: options.size,
      sections: done.sections.map((s) => ({ ...s, onednn: charger.profile(s) })),
      skipped: done.skipped,
    };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

interface ChargedSection {
  byKernel: Map<string, OnednnTotals>;
  convolutions: Map<string, OnednnConvolutionRow>;
}

/**
 * Reads the child's stdout: `boat_profile,begin,<precision>,<workload>` and `boat_profile,end` around the
 * profiled steps, `boat_profile,kernel,<name>` (empty at the top) whenever the running kernel changes, and
 * oneDNN's exec lines in between, which it sums by section, kernel and primitive kind.
 */
export class OnednnCharger {
  /** By section (`<precision>,<workload>`): oneDNN's totals by kernel, and its convolutions by geometry. */
  private readonly sections = new Map<string, ChargedSection>();
  private current: ChargedSection | null = null;
  private kernel = '';

  line(line: string): void {
    if (line.startsWith(`${MARKER},`)) {
      const [, what, a, b] = line.split(',');
      if (what === 'begin') {
        this.current = { byKernel: new Map(), convolutions: new Map() };
        this.sections.set(`${a},${b}`, this.current);
        this.kernel = '';
      } else if (what === 'end') this.current = null;
      else if (what === 'kernel') this.kernel = a ?? '';
      return;
    }
    if (!this.current) return;
    const exec = parseOnednnVerboseLine(line);
    if (!exec) return;
    let totals = this.current.byKernel.get(this.kernel);
    if (!totals) this.current.byKernel.set(this.kernel, (totals = {}));
    addExec(totals, exec);
    if (exec.kind !== 'convolution') return;
    const key = `${exec.propKind} ${exec.problem}`;
    let conv = this.current.convolutions.get(key);
    if (!conv) {
      const { propKind, problem, implementation } = exec;
      this.current.convolutions.set(key, (conv = { propKind, problem, implementation, calls: 0, ms: 0 }));
    }
    conv.calls++;
    conv.ms += exec.ms;
  }

  /** oneDNN's share of one section's kernels, per step. */
  profile(section: Pick<ChildSection, 'precision' | 'workload' | 'profile'>): OnednnProfile {
    const { steps, kernels } = section.profile;
    const charged = this.sections.get(`${section.precision},${section.workload}`);
    const byKernel = charged?.byKernel ?? new Map<string, OnednnTotals>();
    const perStep = (t: OnednnTotals): OnednnTotals =>
      Object.fromEntries(Object.entries(t).map(([k, ms]) => [k, ms / steps]));
    const byKind: OnednnTotals = {};
    const rows: OnednnKernelRow[] = [];
    let outsideKernelsMs = 0;
    for (const [kernel, totals] of byKernel) {
      const mine = perStep(totals);
      for (const [k, ms] of Object.entries(mine)) byKind[k] = (byKind[k] ?? 0) + ms;
      if (kernel === '') {
        outsideKernelsMs += sumTotals(mine);
        continue;
      }
      const wallMs = kernels.find((k) => k.kernel === kernel)?.ms ?? 0;
      const onednnMs = sumTotals(mine);
      rows.push({ kernel, wallMs, byKind: mine, onednnMs, outsideMs: wallMs - onednnMs });
    }
    rows.sort((a, b) => b.wallMs - a.wallMs);
    const convolutions = [...(charged?.convolutions.values() ?? [])]
      .map((c) => ({ ...c, calls: c.calls / steps, ms: c.ms / steps }))
      .sort((a, b) => b.ms - a.ms);
    return { kernels: rows, byKind, totalMs: sumTotals(byKind), outsideKernelsMs, convolutions };
  }
}

/** The profile as text: per section, the categories, the top kernels and oneDNN's breakdown. */
export function formatProfile(result: ProfileResult, topKernels = 15, topConvolutions = 8): string[] {
  const out: string[] = [];
  const ms = (v: number): string => v.toFixed(1).padStart(8);
  const pct = (v: number): string => `${(100 * v).toFixed(1)}%`.padStart(7);
  for (const s of result.sections) {
    const p = s.profile;
    const what = s.workload === 'train' ? 'train step' : 'forward pass (BatchNorm folded)';
    out.push('');
    out.push(
      `${s.precision} ${what}, batch ${result.batch}, ${result.size} px: ${p.stepMs.toFixed(0)} ms per step (mean of ${p.steps} after a warm-up step; one unprofiled step just before: ${s.plainStepMs.toFixed(0)} ms)`,
    );
    out.push(`  ${'category'.padEnd(46)} ${'ms/step'.padStart(8)} ${'share'.padStart(7)}`);
    for (const c of p.categories) {
      const name = c.category === 'untracked' ? 'untracked (JS glue, gradient bookkeeping, tape)' : c.category;
      out.push(`  ${name.padEnd(46)} ${ms(c.ms)} ${pct(c.share)}`);
    }
    out.push(`  ${'kernel'.padEnd(32)} ${'calls'.padStart(6)} ${'ms/step'.padStart(8)} ${'share'.padStart(7)}`);
    for (const k of p.kernels.slice(0, topKernels))
      out.push(`  ${k.kernel.padEnd(32)} ${String(Math.round(k.calls)).padStart(6)} ${ms(k.ms)} ${pct(k.share)}`);
    const rest = p.kernels.slice(topKernels);
    if (rest.length) {
      const restMs = rest.reduce((a, k) => a + k.ms, 0);
      out.push(
        `  ${`(${rest.length} more kernels)`.padEnd(32)} ${''.padStart(6)} ${ms(restMs)} ${pct(restMs / p.stepMs)}`,
      );
    }
    out.push(`  ${'untracked'.padEnd(32)} ${''.padStart(6)} ${ms(p.untrackedMs)} ${pct(p.untrackedMs / p.stepMs)}`);
    const o = s.onednn;
    if (o.kernels.length === 0) {
      out.push('  oneDNN: no primitive ran (the native kernels are not in use)');
      continue;
    }
    out.push(`  inside oneDNN (its own exec times, ONEDNN_VERBOSE=1), ms per step:`);
    out.push(
      `  ${'kernel'.padEnd(24)} ${'wall'.padStart(8)} ${'compute'.padStart(8)} ${'reorders'.padStart(8)} ${'outside oneDNN'.padStart(14)}`,
    );
    const reorders = (t: OnednnTotals): number =>
      Object.entries(t).reduce((a, [k, v]) => (k.startsWith('reorder') ? a + v : a), 0);
    let [wall, compute, reorder] = [0, 0, 0];
    for (const k of o.kernels) {
      const r = reorders(k.byKind);
      out.push(
        `  ${k.kernel.padEnd(24)} ${ms(k.wallMs)} ${ms(k.onednnMs - r)} ${ms(r)} ${ms(k.outsideMs).padStart(14)}`,
      );
      [wall, compute, reorder] = [wall + k.wallMs, compute + k.onednnMs - r, reorder + r];
    }
    out.push(
      `  ${'all'.padEnd(24)} ${ms(wall)} ${ms(compute)} ${ms(reorder)} ${ms(wall - compute - reorder).padStart(14)}`,
    );
    out.push(`  by primitive kind:`);
    for (const [kind, v] of Object.entries(o.byKind).sort((a, b) => b[1] - a[1]))
      out.push(`    ${kind.padEnd(40)} ${ms(v)} ${pct(v / p.stepMs)} of the step`);
    if (o.outsideKernelsMs > 0)
      out.push(`    (of which outside any TF.js kernel: ${o.outsideKernelsMs.toFixed(1)} ms)`);
    out.push(`  slowest oneDNN convolutions (the layers of one geometry together), ms per step:`);
    for (const c of o.convolutions.slice(0, topConvolutions))
      out.push(
        `    ${c.propKind.padEnd(17)} ${c.problem.padEnd(58)} ${`${Math.round(c.calls)}×`.padStart(4)} ${ms(c.ms)}  ${c.implementation}`,
      );
  }
  for (const reason of result.skipped) out.push(`Not profiled: ${reason}`);
  return out;
}
