/**
 * Confident learning (Northcutt, Jiang and Chuang 2021, "Confident Learning: Estimating Uncertainty in
 * Dataset Labels"), following cleanlab's find_label_issues with its defaults: filter_by
 * "prune_by_noise_rate", rank by self-confidence, at least one example kept per class.
 *
 * Given out-of-sample probabilities p[i][j] and the given labels s[i]:
 * 1. per-class thresholds t_j = mean of p[i][j] over the samples labelled j;
 * 2. the confident joint C[given][true]: a sample counts as "truly" j when p[i][j] >= t_j (the most
 *    probable class when several pass), then C is calibrated so each row sums to its class's count;
 * 3. prune by noise rate: for every off-diagonal cell (given k, true j), the C[k][j] samples labelled k
 *    with the largest margin p[i][j] - p[i][k] are issues;
 * 4. a sample the model predicts as its given label is never an issue;
 * 5. issues are ranked by self-confidence p[i][s[i]], lowest first.
 */

export interface LabelIssueIndex {
  index: number;
  given: number;
  /** The model's most probable class. */
  suggested: number;
  /** Self-confidence: the probability of the given label (lower = more likely wrong). */
  score: number;
  rank: number;
}

/** t_j: the mean probability of class j over the samples labelled j (cleanlab's get_confident_thresholds). */
export function confidentThresholds(
  probabilities: readonly number[][],
  labels: ArrayLike<number>,
  classes: number,
): number[] {
  const sum = new Array<number>(classes).fill(0);
  const count = new Array<number>(classes).fill(0);
  for (let i = 0; i < labels.length; i++) {
    sum[labels[i]] += probabilities[i][labels[i]];
    count[labels[i]]++;
  }
  // A class no sample is labelled with has no threshold: nothing can be confidently in it.
  return sum.map((s, j) => (count[j] > 0 ? s / count[j] : Number.POSITIVE_INFINITY));
}

/** Rounds each row to integers whose total is the rounded row total (largest remainders get the extra ones). */
export function roundPreservingRowTotals(matrix: readonly number[][]): number[][] {
  return matrix.map((row) => {
    const ints = row.map((v) => Math.round(v));
    const target = Math.round(row.reduce((a, b) => a + b, 0));
    let diff = target - ints.reduce((a, b) => a + b, 0);
    const order = row
      .map((v, j) => j)
      .sort((a, b) => (diff > 0 ? row[b] - ints[b] - (row[a] - ints[a]) : row[a] - ints[a] - (row[b] - ints[b])));
    for (let k = 0; diff !== 0 && k < order.length; k++) {
      const step = diff > 0 ? 1 : -1;
      ints[order[k]] += step;
      diff -= step;
    }
    return ints;
  });
}

/**
 * The confident joint C[given][true], calibrated (cleanlab's compute_confident_joint with calibrate=True):
 * rows rescaled to the given-label counts, the whole to the number of samples, then rounded.
 */
export function confidentJoint(
  probabilities: readonly number[][],
  labels: ArrayLike<number>,
  classes: number,
  thresholds = confidentThresholds(probabilities, labels, classes),
): number[][] {
  const raw = Array.from({ length: classes }, () => new Array<number>(classes).fill(0));
  for (let i = 0; i < labels.length; i++) {
    const p = probabilities[i];
    const confident: number[] = [];
    for (let j = 0; j < classes; j++) if (p[j] >= thresholds[j] - 1e-6) confident.push(j);
    if (confident.length === 0) continue;
    // Several confident classes: cleanlab takes the overall argmax.
    const guess = confident.length === 1 ? confident[0] : argmaxOf(p);
    raw[labels[i]][guess]++;
  }
  // Every class keeps at least one correctly labelled example.
  for (let j = 0; j < classes; j++) raw[j][j] = Math.max(raw[j][j], 1);
  const counts = new Array<number>(classes).fill(0);
  for (let i = 0; i < labels.length; i++) counts[labels[i]]++;
  const scaled = raw.map((row, k) => {
    const total = row.reduce((a, b) => a + b, 0);
    return row.map((v) => (v / Math.max(total, 1e-12)) * counts[k]);
  });
  const total = scaled.flat().reduce((a, b) => a + b, 0);
  return roundPreservingRowTotals(scaled.map((row) => row.map((v) => (v / Math.max(total, 1e-12)) * labels.length)));
}

/**
 * cleanlab's _keep_at_least_n_per_class on the transposed joint (rows true, columns given): raises each
 * diagonal to at least `n` and takes what it added evenly from that column's non-zero noise cells.
 */
export function pruneCounts(joint: readonly number[][], n = 1): number[][] {
  const K = joint.length;
  const m = Array.from({ length: K }, (_, t) => Array.from({ length: K }, (_, g) => joint[g][t]));
  const out = m.map((row) => row.slice());
  for (let col = 0; col < K; col++) {
    const diag = m[col][col];
    const added = Math.max(diag, n) - diag;
    const nonZero = m.reduce((c, row) => c + (row[col] !== 0 ? 1 : 0), 0);
    const share = added / Math.max(nonZero - 1, 1);
    for (let row = 0; row < K; row++) if (row !== col) out[row][col] = Math.max(0, m[row][col] - share);
    out[col][col] = Math.max(diag, n);
  }
  return roundPreservingRowTotals(out);
}

export interface FindIssuesOptions {
  /** Keep at least this many samples per given class (cleanlab's min_examples_per_class, default 1). */
  minPerClass?: number;
}

/** The label issues, ranked (rank 1 = the lowest self-confidence). */
export function findLabelIssues(
  probabilities: readonly number[][],
  labels: ArrayLike<number>,
  classes: number,
  options: FindIssuesOptions = {},
): LabelIssueIndex[] {
  const n = labels.length;
  const minPerClass = options.minPerClass ?? 1;
  const joint = confidentJoint(probabilities, labels, classes);
  const prune = pruneCounts(joint, minPerClass); // [true][given]
  const counts = new Array<number>(classes).fill(0);
  for (let i = 0; i < n; i++) counts[labels[i]]++;
  const flagged = new Uint8Array(n);
  for (let k = 0; k < classes; k++) {
    if (counts[k] <= minPerClass) continue;
    const members = Array.from({ length: n }, (_, i) => i).filter((i) => labels[i] === k);
    for (let j = 0; j < classes; j++) {
      const remove = prune[j][k];
      if (j === k || remove <= 0) continue;
      // The `remove` samples labelled k that look most like j rather than k.
      const byMargin = members
        .slice()
        .sort(
          (a, b) => probabilities[b][j] - probabilities[b][k] - (probabilities[a][j] - probabilities[a][k]) || a - b,
        );
      for (const i of byMargin.slice(0, remove)) flagged[i] = 1;
    }
  }
  const issues: Omit<LabelIssueIndex, 'rank'>[] = [];
  for (let i = 0; i < n; i++) {
    if (!flagged[i]) continue;
    const suggested = argmaxOf(probabilities[i]);
    if (suggested === labels[i]) continue;
    issues.push({ index: i, given: labels[i], suggested, score: probabilities[i][labels[i]] });
  }
  issues.sort((a, b) => a.score - b.score || a.index - b.index);
  return issues.map((issue, r) => ({ ...issue, rank: r + 1 }));
}

function argmaxOf(values: readonly number[]): number {
  let best = 0;
  for (let j = 1; j < values.length; j++) if (values[j] > values[best]) best = j;
  return best;
}
