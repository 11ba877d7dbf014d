import * as os from 'node:os';

/** Default number of images decoded at once: enough to keep libvips busy on every core. */
export function defaultConcurrency(): number {
  return Math.max(2, Math.min(8, os.availableParallelism() * 2));
}

/**
 * Map `fn` over `items` with at most `limit` calls in flight; results keep the input order.
 */
export async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i], i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(Math.max(1, limit), items.length) }, worker));
  return results;
}
