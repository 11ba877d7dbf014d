import { parseArgs } from 'node:util';

import { UserError } from '../util';

export type FlagSpec = Record<string, { type: 'string' | 'boolean'; short?: string; default?: string | boolean }>;
export type Flags = Record<string, string | boolean | undefined>;

/** Parses flags with node's parseArgs, turning its exceptions into one-line user errors. */
export function parseFlags(argv: string[], spec: FlagSpec, allowPositionals = false): { flags: Flags; positionals: string[] } {
  try {
    const { values, positionals } = parseArgs({ args: argv, options: spec, allowPositionals, strict: true });
    return { flags: values, positionals };
  } catch (err) {
    throw new UserError((err as Error).message.split('\n')[0]);
  }
}

export function stringFlag(flags: Flags, name: string): string | undefined {
  const v = flags[name];
  return typeof v === 'string' ? v : undefined;
}

export function requiredString(flags: Flags, name: string): string {
  const v = stringFlag(flags, name);
  if (v === undefined || v === '') throw new UserError(`missing --${name}`);
  return v;
}

export function intFlag(flags: Flags, name: string): number | undefined {
  const v = stringFlag(flags, name);
  if (v === undefined) return undefined;
  if (!/^-?\d+$/.test(v)) throw new UserError(`--${name} must be an integer, got "${v}"`);
  return Number(v);
}
