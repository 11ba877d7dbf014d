/**
 * Dataset audit: exact duplicates (by content hash) within and across classes, unreadable or
 * non-image files, and, given a split, duplicates that straddle subsets (train/test leakage).
 */
import * as path from 'node:path';

import { defaultConcurrency, displayPath, mapLimit, sha256File } from '../util';
import { findDecodeProblem, readImageHeader, extensionMismatch } from './probe';
import { compareStrings, scanImageFolder, Skipped } from './scan';
import { readSplitCsv, Subset } from './split';

export interface DuplicateMember {
  /** Path relative to the data folder. */
  path: string;
  class: string;
  subset?: Subset;
}

export interface DuplicateGroup {
  sha256: string;
  kind: 'within-class' | 'across-classes';
  files: DuplicateMember[];
}

export interface AuditReport {
  root: string;
  images: number;
  classes: Record<string, number>;
  duplicates: DuplicateGroup[];
  /** Files with an image extension that do not decode. */
  unreadable: Skipped[];
  /** Files and folders the scan left out (non-images, empty folders...). */
  skipped: Skipped[];
  /** Readable files whose format and extension disagree. */
  notes: Skipped[];
  /** Duplicate groups whose members sit in more than one subset; present when a split was given. */
  leakage?: DuplicateGroup[];
  splitCsv?: string;
}

export interface AuditOptions {
  data: string;
  split?: string;
  concurrency?: number;
}

export async function auditDataset(options: AuditOptions): Promise<AuditReport> {
  const scanned = scanImageFolder(options.data);
  const concurrency = options.concurrency ?? defaultConcurrency();
  const checks = await mapLimit(scanned.files, concurrency, async (f) => {
    const [hash, problem] = await Promise.all([sha256File(f.file), findDecodeProblem(f.file)]);
    const note = problem ? null : extensionMismatch(f.file, (await readImageHeader(f.file)).format);
    return { ...f, hash, problem, note };
  });

  const unreadable = checks.filter((c) => c.problem).map((c) => ({ path: c.file, reason: c.problem! }));
  const notes = checks.filter((c) => c.note).map((c) => ({ path: c.file, reason: c.note! }));
  const readable = checks.filter((c) => !c.problem);
  const classes: Record<string, number> = {};
  for (const c of readable) classes[c.label] = (classes[c.label] ?? 0) + 1;

  let subsetOf: Map<string, Subset> | undefined;
  if (options.split) {
    subsetOf = new Map(readSplitCsv(options.split).map((r) => [path.resolve(r.file), r.subset]));
  }
  const groups = new Map<string, typeof readable>();
  for (const c of readable) groups.set(c.hash, [...(groups.get(c.hash) ?? []), c]);
  const duplicates: DuplicateGroup[] = [...groups.entries()]
    .filter(([, members]) => members.length > 1)
    .map(([sha256, members]) => ({
      sha256,
      kind: new Set(members.map((m) => m.label)).size > 1 ? ('across-classes' as const) : ('within-class' as const),
      files: members.map((m) => ({ path: m.relative, class: m.label, subset: subsetOf?.get(m.file) })),
    }))
    .sort((a, b) => compareStrings(a.files[0].path, b.files[0].path));

  const report: AuditReport = {
    root: scanned.root,
    images: readable.length,
    classes,
    duplicates,
    unreadable,
    skipped: scanned.skipped,
    notes,
  };
  if (subsetOf) {
    report.splitCsv = path.resolve(options.split!);
    report.leakage = duplicates.filter(
      (g) => new Set(g.files.map((f) => f.subset).filter((s) => s !== undefined)).size > 1,
    );
  }
  return report;
}

/** The audit as readable text, one finding per line. */
export function formatAudit(report: AuditReport): string {
  const lines: string[] = [];
  const classList = Object.entries(report.classes)
    .map(([c, n]) => `${c} ${n}`)
    .join(', ');
  lines.push(`Audited ${report.images} readable images in ${displayPath(report.root)} (${classList})`);
  const within = report.duplicates.filter((d) => d.kind === 'within-class');
  const across = report.duplicates.filter((d) => d.kind === 'across-classes');
  const describe = (g: DuplicateGroup): string =>
    g.files.map((f) => (f.subset ? `${displayPath(f.path)} [${f.subset}]` : displayPath(f.path))).join(' = ');
  lines.push(`Exact duplicates within a class: ${within.length} group(s)`);
  for (const g of within) lines.push(`  ${describe(g)}`);
  lines.push(`Exact duplicates across classes (one image, two labels): ${across.length} group(s)`);
  for (const g of across) lines.push(`  ${describe(g)}`);
  if (report.leakage) {
    lines.push(
      `Leakage (duplicates split across subsets, per ${displayPath(report.splitCsv!)}): ${report.leakage.length} group(s)`,
    );
    for (const g of report.leakage) lines.push(`  ${describe(g)}`);
  }
  lines.push(`Unreadable images: ${report.unreadable.length}`);
  for (const s of report.unreadable) lines.push(`  ${displayPath(s.path)}: ${s.reason}`);
  lines.push(`Skipped entries: ${report.skipped.length}`);
  for (const s of report.skipped) lines.push(`  ${displayPath(s.path)}: ${s.reason}`);
  if (report.notes.length > 0) {
    lines.push(`Notes: ${report.notes.length}`);
    for (const s of report.notes) lines.push(`  ${displayPath(s.path)}: ${s.reason}`);
  }
  return lines.join('\n');
}
