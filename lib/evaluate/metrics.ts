/** Classification metrics: accuracy, per-class precision/recall/F1, confusion matrix raw and normalised. */
export interface ClassMetrics {
  class: string;
  precision: number;
  recall: number;
  f1: number;
  support: number;
}

export interface Metrics {
  accuracy: number;
  samples: number;
  classes: string[];
  perClass: ClassMetrics[];
  /** confusion[actual][predicted] counts. */
  confusion: number[][];
  /** Each row divided by its total (recall on the diagonal). */
  confusionNormalized: number[][];
}

export function computeMetrics(
  actual: ArrayLike<number>,
  predicted: ArrayLike<number>,
  classes: readonly string[],
): Metrics {
  const k = classes.length;
  const confusion = Array.from({ length: k }, () => new Array<number>(k).fill(0));
  for (let i = 0; i < actual.length; i++) confusion[actual[i]][predicted[i]]++;
  const correct = confusion.reduce((n, row, i) => n + row[i], 0);
  const perClass = classes.map((name, c) => {
    const tp = confusion[c][c];
    const support = confusion[c].reduce((a, b) => a + b, 0);
    const predictedAs = confusion.reduce((n, row) => n + row[c], 0);
    const precision = predictedAs ? tp / predictedAs : 0;
    const recall = support ? tp / support : 0;
    const f1 = precision + recall ? (2 * precision * recall) / (precision + recall) : 0;
    return { class: name, precision, recall, f1, support };
  });
  const confusionNormalized = confusion.map((row) => {
    const total = row.reduce((a, b) => a + b, 0);
    return row.map((v) => (total ? v / total : 0));
  });
  return {
    accuracy: actual.length ? correct / actual.length : 0,
    samples: actual.length,
    classes: [...classes],
    perClass,
    confusion,
    confusionNormalized,
  };
}

/** The confusion matrix and per-class scores as text. */
export function formatMetrics(m: Metrics): string {
  const w = Math.max(10, ...m.classes.map((c) => c.length));
  const lines = [
    `accuracy ${m.accuracy.toFixed(4)} on ${m.samples} images`,
    '',
    `confusion (rows: actual, columns: predicted)`,
  ];
  lines.push(`${''.padEnd(w)} ${m.classes.map((c) => c.slice(0, 8).padStart(8)).join(' ')}`);
  m.confusion.forEach((row, i) =>
    lines.push(`${m.classes[i].padEnd(w)} ${row.map((v) => String(v).padStart(8)).join(' ')}`),
  );
  lines.push('', `${'class'.padEnd(w)} precision   recall       f1  support`);
  for (const c of m.perClass)
    lines.push(
      `${c.class.padEnd(w)} ${c.precision.toFixed(4).padStart(9)} ${c.recall.toFixed(4).padStart(8)} ${c.f1.toFixed(4).padStart(8)} ${String(c.support).padStart(8)}`,
    );
  return lines.join('\n');
}
