/**
 * PyTorch as a long-lived child process (bench/torch_resnet50.py --serve), so that the bench can
 * alternate its reps with ours one by one: neither side gets a quieter minute of a shared machine.
 * The child sits blocked on stdin while ours runs, and we wait on it while it runs.
 */
import { ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as readline from 'node:readline';

import { checkTorchResult, median, RepPartner, TorchBenchResult } from './model';

export const TORCH_SCRIPT = path.resolve(__dirname, '..', '..', '..', 'bench', 'torch_resnet50.py');
export const TORCH_CONFIGS = ['nchw', 'channels_last', 'bf16_channels_last'] as const;
export type TorchConfig = (typeof TORCH_CONFIGS)[number];

export interface TorchInfo {
  torch_version: string;
  threads: number;
  batch: number;
  size: number;
  params: number;
  /** 2 × the multiply-adds of torchvision's convolutions and linear layers for one image. */
  forward_flops_per_image: number;
}

/** A reply slower than this means a stuck child: it is killed, and the bench goes on without PyTorch. */
const REPLY_TIMEOUT_MS = 900_000;

/** The promise's value, or after `ms` `onTimeout()` and the iterator's end. */
async function withTimeout<T>(
  p: Promise<IteratorResult<T>>,
  ms: number,
  onTimeout: () => void,
): Promise<IteratorResult<T>> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<IteratorResult<T>>((resolve) => {
    timer = setTimeout(() => {
      onTimeout();
      resolve({ done: true, value: undefined });
    }, ms);
  });
  try {
    return await Promise.race([p, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** Seconds of one rep in each configuration. */
export type TorchRep = Record<TorchConfig, number>;

/** Why a reply is unusable: the child's own error, or a missing or non-positive time. */
export function checkTorchRep(reply: unknown): TorchRep {
  const r = reply as Partial<Record<string, unknown>>;
  if (typeof r?.error === 'string') throw new Error(`PyTorch: ${r.error}`);
  for (const name of TORCH_CONFIGS) {
    const s = r?.[name];
    if (typeof s !== 'number' || !(s > 0) || !Number.isFinite(s)) throw new Error(`PyTorch rep lacks ${name}`);
  }
  return r as TorchRep;
}

export class TorchSession {
  private constructor(
    private readonly child: ChildProcess,
    readonly info: TorchInfo,
    private readonly lines: AsyncIterator<string>,
    /** The end of the child's stderr, for the error when it fails. */
    private readonly stderr: { tail: string },
    private readonly closed: Promise<unknown>,
  ) {}

  /** Starts the child and waits until its model is built; the reason instead when it cannot run. */
  static async start(
    threads: number,
    batch: number,
    size = 224,
    python = '/usr/bin/python3',
  ): Promise<TorchSession | { missing: string }> {
    if (!fs.existsSync(python)) return { missing: `${python} not found` };
    const child = spawn(python, [TORCH_SCRIPT, '--serve', String(threads), String(batch), String(size)], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const closed = new Promise<number | null>((resolve) => child.once('close', resolve));
    const stderr = { tail: '' };
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d: string) => (stderr.tail = (stderr.tail + d).slice(-4000)));
    // A child that cannot start or dies ends stdout, which is reported below or by request().
    child.on('error', (err) => (stderr.tail += `\n${err.message}`));
    child.stdin.on('error', (err) => (stderr.tail += `\n${err.message}`));
    const lines = readline.createInterface({ input: child.stdout })[Symbol.asyncIterator]();
    const first = await withTimeout(lines.next(), REPLY_TIMEOUT_MS, () => {
      stderr.tail += `\nno reply in ${REPLY_TIMEOUT_MS / 1000} s`;
      child.kill();
    });
    if (first.done) {
      const code = await closed;
      const last = stderr.tail.trim().split('\n').pop();
      const why = /No module named '?(torch\w*)/.exec(stderr.tail)?.[1];
      return {
        missing: why
          ? `PyTorch not installed (no module ${why}; apt-get install python3-torch python3-torchvision)`
          : `PyTorch run failed: ${last || `python exited with code ${code} before its first line`}`,
      };
    }
    return new TorchSession(child, JSON.parse(first.value) as TorchInfo, lines, stderr, closed);
  }

  private async request(command: string): Promise<unknown> {
    this.child.stdin!.write(`${command}\n`);
    const next = await withTimeout(this.lines.next(), REPLY_TIMEOUT_MS, () => this.kill());
    if (next.done) {
      const last = this.stderr.tail.trim().split('\n').pop();
      throw new Error(`PyTorch exited during "${command}"${last ? `: ${last}` : ''}`);
    }
    return JSON.parse(next.value);
  }

  private kill(): void {
    this.stderr.tail += `\nno reply in ${REPLY_TIMEOUT_MS / 1000} s`;
    this.child.kill();
  }

  /** Two warm-ups of forward and train step in each configuration. */
  async warmUp(): Promise<void> {
    const r = (await this.request('warmup')) as { ok?: boolean; error?: string };
    if (!r.ok) throw new Error(`PyTorch warm-up failed: ${r.error ?? JSON.stringify(r)}`);
  }

  /** One timed rep of `what` in each configuration. */
  async rep(what: 'forward' | 'train'): Promise<TorchRep> {
    return checkTorchRep(await this.request(what));
  }

  /** Ends the child (end of stdin) and waits for it. */
  async close(): Promise<void> {
    this.child.stdin!.end();
    await this.closed;
  }
}

/**
 * The session as benchModel's partner: collects the seconds of each rep, and after a failure stops
 * asking, so that ours is still measured and the table says why PyTorch's figures are missing.
 */
export class TorchPartner implements RepPartner {
  readonly seconds: Record<'forward' | 'train', Record<TorchConfig, number[]>> = {
    forward: { nchw: [], channels_last: [], bf16_channels_last: [] },
    train: { nchw: [], channels_last: [], bf16_channels_last: [] },
  };
  private failure: string | null = null;

  constructor(readonly session: TorchSession) {}

  private async guard(f: () => Promise<void>): Promise<void> {
    if (this.failure !== null) return;
    try {
      await f();
    } catch (err) {
      this.failure = (err as Error).message;
    }
  }

  warmUp(): Promise<void> {
    return this.guard(() => this.session.warmUp());
  }

  rep(what: 'forward' | 'train'): Promise<void> {
    return this.guard(async () => {
      const r = await this.session.rep(what);
      for (const name of TORCH_CONFIGS) this.seconds[what][name].push(r[name]);
    });
  }

  /** Median img/s of each configuration, in the one-shot script's shape; or why there are none. */
  result(): TorchBenchResult | { missing: string } {
    if (this.failure !== null) return { missing: `PyTorch run failed: ${this.failure}` };
    const { batch } = this.session.info;
    const rates = (name: TorchConfig) => ({
      forward_img_s: batch / median(this.seconds.forward[name]),
      train_img_s: batch / median(this.seconds.train[name]),
    });
    const configs = {
      nchw: rates('nchw'),
      channels_last: rates('channels_last'),
      bf16_channels_last: rates('bf16_channels_last'),
    };
    return checkTorchResult({ ...this.session.info, ...configs.nchw, reps: this.seconds.forward.nchw.length, configs });
  }
}
