/**
 * oneDNN's own timing of each primitive it executes, read from its verbose log (ONEDNN_VERBOSE=1, which
 * must be set before the library loads). oneDNN 2.6 prints one line per execution:
 *
 *   onednn_verbose,exec,cpu,<primitive kind>,<implementation>,<prop kind>,<memory descriptors>,<attributes>,<auxiliary>,<problem>,<ms>
 *
 * (the `prim_template` info line it prints first names these fields). Reorders are split by what they
 * convert: a filter (TF.js' HWIO layout, `cdba` to oneDNN) or an activation/gradient (NHWC, `acdb`), and
 * whether they change the type (fp32 <-> bf16) or only the layout.
 */

export interface OnednnExec {
  /** The primitive kind (convolution, reorder, matmul, ...), a reorder refined as in reorderKind. */
  kind: string;
  implementation: string;
  propKind: string;
  /** The shapes, e.g. mb8_ic64oc64_ih56oh56kh3sh1dh0ph1_iw56ow56kw3sw1dw0pw1 for a convolution. */
  problem: string;
  ms: number;
}

/** One `exec` line, or null for anything else (info lines, other output). */
export function parseOnednnVerboseLine(line: string): OnednnExec | null {
  const fields = line.trim().split(',');
  if (fields.length < 11 || !/^(onednn|dnnl)_verbose$/.test(fields[0]) || fields[1] !== 'exec') return null;
  const ms = Number(fields[fields.length - 1]);
  if (!Number.isFinite(ms)) return null;
  const [primitive, implementation, propKind, descriptors] = fields.slice(3, 7);
  const kind = primitive === 'reorder' ? reorderKind(descriptors) : primitive;
  return { kind, implementation, propKind, problem: fields[fields.length - 2], ms };
}

/** "reorder, filter, fp32->bf16", "reorder, activation, layout" and so on, from the memory descriptors. */
export function reorderKind(descriptors: string): string {
  const mds = descriptors.split(' ').map((md) => {
    // src_f32::blocked:acdb:f0 -> type f32, format acdb
    const [arg, , , format] = md.split(':');
    return { type: arg.slice(arg.indexOf('_') + 1), format: format ?? '' };
  });
  const [src, dst] = mds;
  if (!src || !dst) return 'reorder';
  const tensor = mds.some((md) => md.format === 'cdba')
    ? 'filter'
    : mds.some((md) => md.format === 'acdb')
      ? 'activation'
      : 'matmul operand';
  const what = src.type === dst.type ? 'layout' : `${src.type}->${dst.type}`;
  return `reorder, ${tensor}, ${what}`;
}

/** Milliseconds by primitive kind. */
export type OnednnTotals = Record<string, number>;

export function addExec(totals: OnednnTotals, exec: OnednnExec): void {
  totals[exec.kind] = (totals[exec.kind] ?? 0) + exec.ms;
}

export function sumTotals(totals: OnednnTotals): number {
  return Object.values(totals).reduce((a, b) => a + b, 0);
}
