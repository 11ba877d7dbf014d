/**
 * The arithmetic precision of the convolutions and matrix products: fp32, or bf16 on CPUs that compute
 * it natively (the native kernels, native-kernels.ts). `auto` is bf16 where native, else fp32.
 *
 * bf16 follows PyTorch's CPU autocast: only those primitives read bf16 copies of their inputs; they
 * write fp32, and the weights, optimizer state, loss, softmax and BatchNorm statistics stay fp32, so
 * no loss scaling is needed. The default is auto: over three seeds each, bf16 trained the feature
 * extractor and the two-stage recipe to the same test accuracy as fp32 within 0.5 points, and faster
 * (docs/engine.md, "Precision").
 */
import { UserError } from '../util';
import { nativeBf16Support, nativePrecision, setNativePrecision } from './native-kernels';

export type Precision = 'fp32' | 'bf16';
export type PrecisionChoice = Precision | 'auto';
export const PRECISION_CHOICES: readonly PrecisionChoice[] = ['fp32', 'bf16', 'auto'];
export const DEFAULT_PRECISION: PrecisionChoice = 'auto';

export function parsePrecision(value: string, source = 'BOAT_PRECISION'): PrecisionChoice {
  if ((PRECISION_CHOICES as readonly string[]).includes(value)) return value as PrecisionChoice;
  throw new UserError(`${source} must be one of ${PRECISION_CHOICES.join(', ')}, got "${value}"`);
}

let requested: PrecisionChoice | undefined;

/** The choice selectBackend applies from now on (the CLI's --precision); undefined: BOAT_PRECISION again. */
export function requestPrecision(choice: PrecisionChoice | undefined): void {
  requested = choice;
}

/** --precision when given, else BOAT_PRECISION (the notebooks'), else the default. */
export function requestedPrecision(env = process.env): PrecisionChoice {
  if (requested) return requested;
  const fromEnv = env.BOAT_PRECISION;
  return fromEnv ? parsePrecision(fromEnv) : DEFAULT_PRECISION;
}

/** Whether the precision was asked for (--precision or BOAT_PRECISION) rather than left to the default. */
export function precisionAsked(env = process.env): boolean {
  return requested !== undefined || Boolean(env.BOAT_PRECISION);
}

export interface PrecisionInUse {
  precision: Precision;
  /** For the backend line: '' for plain fp32, else what runs and, for auto's fp32, why. */
  note: string;
}

/**
 * Makes the native kernels compute in `choice`. A bf16 request without native bf16 is a UserError;
 * auto falls back to fp32, and says why when it was `asked` for rather than the default.
 */
export function applyPrecision(choice: PrecisionChoice, backend: string, asked = true): PrecisionInUse {
  if (choice === 'fp32') {
    setNativePrecision('fp32');
    return { precision: 'fp32', note: '' };
  }
  const support = nativeBf16Support();
  const reason = backend !== 'wasm' ? `the ${backend} backend computes in fp32 only` : support.ok ? '' : support.reason;
  if (reason) {
    if (choice === 'bf16') throw new UserError(`precision bf16 is not available: ${reason}; use fp32 or auto`);
    setNativePrecision('fp32');
    // The default falling back to fp32 is what every run did before bf16 existed: only an asked-for auto says why.
    return { precision: 'fp32', note: asked ? `precision auto: fp32, as ${reason}` : '' };
  }
  setNativePrecision('bf16');
  return {
    precision: 'bf16',
    note: `${choice === 'auto' ? 'precision auto: ' : ''}bf16 convolutions and matrix products`,
  };
}

/** What the convolutions and matrix products compute in now (for metadata, configs and cache keys). */
export function activePrecision(): Precision {
  return nativePrecision();
}
