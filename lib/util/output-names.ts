import * as path from 'node:path';

/**
 * Output file names, one per input, that never collide: each is the input's path relative to the
 * folder all inputs share, without its extension, plus `suffix` (`kayak/1.prediction.png`), because the
 * real photos reuse base names across class folders. Where two inputs still map to one name (`1.jpg` and
 * `1.png` side by side) the later one keeps its extension, then gets a counter. Names are compared
 * case-insensitively, so they stay distinct on case-insensitive file systems too. The same file given
 * twice gets the same name.
 */
export function distinctOutputNames(files: readonly string[], suffix: string): string[] {
  const resolved = files.map((f) => path.resolve(f));
  const common = resolved
    .map((f) => path.dirname(f))
    .reduce((a, b) => commonFolder(a, b), resolved.length > 0 ? path.dirname(resolved[0]) : '');
  const byFile = new Map<string, string>();
  const taken = new Set<string>();
  return resolved.map((file) => {
    const known = byFile.get(file);
    if (known !== undefined) return known;
    const relative = path.relative(common, file);
    const stem = relative.slice(0, relative.length - path.extname(relative).length);
    const candidates = [`${stem}${suffix}`, `${relative}${suffix}`];
    let name = candidates.find((c) => !taken.has(c.toLowerCase()));
    for (let k = 2; name === undefined; k++)
      if (!taken.has(`${stem}-${k}${suffix}`.toLowerCase())) name = `${stem}-${k}${suffix}`;
    taken.add(name.toLowerCase());
    byFile.set(file, name);
    return name;
  });
}

function commonFolder(a: string, b: string): string {
  const pa = a.split(path.sep);
  const pb = b.split(path.sep);
  let n = 0;
  while (n < pa.length && n < pb.length && pa[n] === pb[n]) n++;
  return pa.slice(0, n).join(path.sep) || path.sep;
}
