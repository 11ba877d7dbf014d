/**
 * SGD with momentum whose step is one kernel per variable.
 *
 * tfjs' MomentumOptimizer steps each variable with four kernels, mul(m, accumulation), add(·, gradient),
 * mul(−rate, ·) and add(·, value): on ResNet50, 644 calls a step that each stream a whole variable, 23.5M
 * weights in all. Where the native addon registers MOMENTUM_STEP for the active backend, this optimizer
 * runs that one pass instead (the same arithmetic, rounded the same way, so the same weights bit for
 * bit); elsewhere (no addon, another backend, Nesterov, a variable that is not float32) it is tfjs' own.
 * The slot variables, their names and getWeights/setWeights are tfjs', so a saved run resumes either way.
 */
import * as tf from './tf';

/** Kernel name: inputs value, accumulation, gradient (float32, one shape); attrs momentum, rate; outputs [newValue, newAccumulation]. */
export const MOMENTUM_STEP = 'BoatMomentumStep';

/** The fields of tfjs' MomentumOptimizer this one reads (private there). */
interface MomentumInternals {
  learningRate: number;
  momentum: number;
  useNesterov: boolean;
  accumulations: Array<{ originalName: string; variable: tf.Variable } | undefined>;
}

type VariableGradients = Parameters<tf.MomentumOptimizer['applyGradients']>[0];

class FusedMomentumOptimizer extends tf.MomentumOptimizer {
  override applyGradients(variableGradients: VariableGradients): void {
    const self = this as unknown as MomentumInternals;
    if (self.useNesterov || tf.getKernel(MOMENTUM_STEP, tf.getBackend()) === undefined) {
      super.applyGradients(variableGradients);
      return;
    }
    const list = Array.isArray(variableGradients)
      ? variableGradients
      : Object.entries(variableGradients).map(([name, tensor]) => ({ name, tensor }));
    const fused = list.every(
      ({ name, tensor }) =>
        tensor == null || (tensor.dtype === 'float32' && tf.engine().registeredVariables[name]?.dtype === 'float32'),
    );
    if (!fused) {
      super.applyGradients(variableGradients);
      return;
    }
    list.forEach(({ name, tensor: gradient }, i) => {
      // As tfjs: slots are made on first use, in the order of the gradients, and named after the variable.
      const value = tf.engine().registeredVariables[name];
      const slot = (self.accumulations[i] ??= {
        originalName: `${name}/momentum`,
        variable: tf.tidy(() => tf.zerosLike(value).variable(false)),
      });
      if (gradient == null) return;
      const accumulation = slot.variable;
      tf.tidy(() => {
        const [newValue, newAccumulation] = tf
          .engine()
          .runKernel<tf.Tensor[]>(
            MOMENTUM_STEP,
            { value, accumulation, gradient },
            { momentum: self.momentum, rate: self.learningRate },
          );
        accumulation.assign(newAccumulation);
        value.assign(newValue);
      });
    });
    this.incrementIterations();
  }
}

/** tf.train.momentum(learningRate, momentum), stepping through MOMENTUM_STEP where it is registered. */
export function momentumOptimizer(learningRate: number, momentum: number): tf.MomentumOptimizer {
  return new FusedMomentumOptimizer(learningRate, momentum);
}
