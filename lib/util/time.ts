/** A monotonic start mark for secondsSince. */
export function now(): bigint {
  return process.hrtime.bigint();
}

/** Seconds elapsed since a mark taken with now(). */
export function secondsSince(start: bigint): number {
  return Number(process.hrtime.bigint() - start) / 1e9;
}

/** The process's peak resident set size so far, in MB. */
export function peakRssMb(): number {
  return process.resourceUsage().maxRSS / 1024;
}
