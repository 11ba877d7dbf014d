/**
 * Skips for the tests that need the native addon or native bf16, and a run over both kernel sets (kept apart
 * from helpers.ts, which loads no engine).
 */
import * as fs from 'node:fs';
import type { TestContext } from 'node:test';

import { loadNativeAddon, nativeBf16Support, nativeKernelsInUse, setNativeKernels } from '../lib/engine/native-kernels';
import { skipRestUnlessCi } from './helpers';

/**
 * Skips the rest of a test that needs the native addon, unless it is in use (`nativeOn`): with the reason
 * when BOAT_NATIVE=0 turned it off, else (it failed to load) a failure under CI=true.
 */
export function skipWithoutNativeAddon(t: TestContext, nativeOn: boolean): boolean {
  if (nativeOn) return false;
  const loaded = loadNativeAddon();
  const reason = 'reason' in loaded ? loaded.reason : 'turned off';
  if (reason === 'BOAT_NATIVE=0') {
    t.skip('native addon turned off (BOAT_NATIVE=0)');
    return true;
  }
  return skipRestUnlessCi(t, `native addon not available: ${reason}`);
}

/** The CPU's own bf16 flags, from /proc/cpuinfo (Linux); what a CI runner has is not up to CI to install. */
function cpuHasBf16(): boolean {
  try {
    return /\b(avx512_bf16|amx_bf16)\b/.test(fs.readFileSync('/proc/cpuinfo', 'utf8'));
  } catch {
    return false;
  }
}

/**
 * Skips the rest of a test that needs native bf16, unless the addon is on and the CPU has it. A missing
 * addon is as in skipWithoutNativeAddon; a CPU without bf16 is a skip, CI or not, but one whose flags show
 * bf16 while the addon finds none fails under CI=true, so a broken detection cannot pass as missing hardware.
 */
export function skipWithoutNativeBf16(t: TestContext, nativeOn: boolean): boolean {
  if (skipWithoutNativeAddon(t, nativeOn)) return true;
  const support = nativeBf16Support();
  if (support.ok) return false;
  if (!cpuHasBf16()) {
    t.skip(`no native bf16 on this CPU: ${support.reason}`);
    return true;
  }
  return skipRestUnlessCi(t, `the CPU lists bf16 but the addon finds none: ${support.reason}`);
}

/** Runs `check` with the wasm-only kernels, then with the native ones when the addon is built. */
export async function withEachKernelSet(check: (label: string) => void | Promise<void>): Promise<void> {
  const wasNative = setNativeKernels(false);
  try {
    await check('wasm kernels');
    setNativeKernels(true);
    if (nativeKernelsInUse()) await check('native kernels');
  } finally {
    setNativeKernels(wasNative);
  }
}
