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

/** A duration as whole minutes and seconds, "37m 55s", rounded to the second. */
export function minutesAndSeconds(seconds: number): string {
  const total = Math.round(seconds);
  return `${Math.floor(total / 60)}m ${total % 60}s`;
}
