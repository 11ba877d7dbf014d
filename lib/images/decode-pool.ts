/**
 * A small pool of decode workers (worker_threads). Each request is one image: file, transform spec and
 * generator state; the reply carries the float pixels (transferred, not copied).
 *
 * Idle workers are unref'd so they never keep a finished program alive.
 */
import * as os from 'node:os';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import 'sharp'; // load libvips on the main thread before any worker does

import { jpegAddonActive, jpegExact } from './jpeg';
import type { TransformSpec } from './transforms';

export interface DecodeRequest {
  id: number;
  file: string;
  spec: TransformSpec;
  rngState: number;
  /** Whether the JPEG addon decodes plain JPEGs, and in exact mode (they follow the loader's thread, see setJpegAddon). */
  jpegAddon: boolean;
  jpegExact: boolean;
}

export type DecodeReply =
  | { id: number; ok: true; data: Float32Array; width: number; height: number }
  | { id: number; ok: false; reason: string }
  | { id: number; ok: false; fatal: string };

interface Slot {
  worker: Worker;
  busy: number;
}

export class DecodePool {
  private readonly slots: Slot[];
  private readonly pending = new Map<
    number,
    { resolve: (r: DecodeReply) => void; reject: (e: Error) => void; slot: Slot }
  >();
  private seq = 0;
  private closed = false;

  constructor(readonly size: number) {
    const script = path.join(__dirname, 'decode-worker.js');
    this.slots = Array.from({ length: size }, () => {
      const slot: Slot = { worker: new Worker(script), busy: 0 };
      slot.worker.unref();
      slot.worker.on('message', (reply: DecodeReply) => this.settle(reply));
      slot.worker.on('error', (err) => this.failAll(slot, err));
      return slot;
    });
  }

  /** Decodes one image in the least busy worker. */
  run(file: string, spec: TransformSpec, rngState: number): Promise<DecodeReply> {
    if (this.closed) return Promise.reject(new Error('decode pool is closed'));
    const slot = this.slots.reduce((a, b) => (b.busy < a.busy ? b : a));
    const id = ++this.seq;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, slot });
      if (slot.busy++ === 0) slot.worker.ref();
      slot.worker.postMessage({
        id,
        file,
        spec,
        rngState,
        jpegAddon: jpegAddonActive(),
        jpegExact: jpegExact(),
      } satisfies DecodeRequest);
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
  }

  private settle(reply: DecodeReply): void {
    const entry = this.pending.get(reply.id);
    if (!entry) return;
    this.pending.delete(reply.id);
    if (--entry.slot.busy === 0) entry.slot.worker.unref();
    entry.resolve(reply);
  }

  private failAll(slot: Slot, err: Error): void {
    for (const [id, entry] of this.pending) {
      if (entry.slot !== slot) continue;
      this.pending.delete(id);
      entry.reject(new Error(`decode worker failed: ${err.message}`));
    }
    slot.busy = 0;
  }

  private static instance: DecodePool | null = null;

  /** One pool per process, shared by all loaders; created on first use. */
  static shared(size = defaultDecodeWorkers()): DecodePool {
    if (!DecodePool.instance || DecodePool.instance.size !== size) {
      void DecodePool.instance?.close();
      DecodePool.instance = new DecodePool(size);
    }
    return DecodePool.instance;
  }
}

/** Decode workers by default: one per core, so decoding overlaps the main thread's work. */
export function defaultDecodeWorkers(): number {
  return Math.max(1, Math.min(4, os.availableParallelism()));
}
