/**
 * `boat bench`: the project's speed numbers, measured in one run so that ratios compare like with like:
 * the image loader, ResNet50 forward and the head step on the active backend, and PyTorch's forward and
 * train step on the same machine with the same thread count when it is installed.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { Command } from 'commander';

import { benchFeatureExtractor } from '../bench/experiment';
import { benchLoader } from '../bench/loader';
import { GemmRate, NativeGemm } from '../bench/gemm';
import { benchModel, torchComparisonKeys } from '../bench/model';
import { benchProfile, formatProfile, profileJson, type ProfileOptions } from '../bench/profile';
import { rooflineKeys, TRAIN_STEP_FORWARDS } from '../bench/roofline';
import { TorchPartner, TorchSession } from '../bench/torch-session';
import { nativeKernelsInUse, selectBackend } from '../engine';
import { makeDemoDataset } from '../data';
import { peakRssMb, writeJsonAtomic } from '../util';

const SHARED_PHOTOS = path.resolve(__dirname, '..', '..', '..', '..', 'shared', 'data', 'boat-types');

export function registerBenchCommand(program: Command): void {
  program
    .command('bench')
    .description(
      "speed measurements: image loader, ResNet50 forward and train step, head step, and PyTorch's side by side when it is installed",
    )
    .option('--quick', 'fewer images, batch sizes and repeats')
    .option('--json <file>', 'also write the numbers as JSON')
    .option(
      '--profile',
      'only profile a ResNet50 train step and forward pass (batch 8, 224 px, fp32 and bf16 where native): time per TF.js kernel and inside oneDNN',
    )
    .option(
      '--data <dir>',
      `class folders of photos to load (default: the Kaggle photos at ${path.join('..', 'shared', 'data', 'boat-types')} when present, else a SYNTHETIC demo set at 1280 px)`,
    )
    .action(benchCommand);
}

export interface BenchFlags {
  quick?: boolean;
  json?: string;
  data?: string;
  profile?: boolean;
}

/** Three train steps and five forward passes after a warm-up and an unprofiled step: about a minute on 2 cores. */
const PROFILE: ProfileOptions = { batch: 8, size: 224, steps: { train: 3, forward: 5 } };

export async function benchCommand(flags: BenchFlags): Promise<void> {
  if (flags.profile) return profileCommand(flags);
  const quick = flags.quick === true;
  let data = flags.data;
  let source: string;
  if (data) source = `${path.resolve(data)} (given)`;
  else if (fs.existsSync(SHARED_PHOTOS)) {
    data = SHARED_PHOTOS;
    source = `${data} (real photos, 1280 px)`;
  } else {
    data = path.join(os.tmpdir(), `boat-bench-demo-${process.pid}`);
    await makeDemoDataset({ out: data, perClass: quick ? 40 : 100, seed: 0, minWidth: 1280, maxWidth: 1280 });
    source = `${data} (SYNTHETIC demo set at 1280 px: no real photos found at ${SHARED_PHOTOS})`;
  }
  const backend = await selectBackend();
  const started = Date.now();
  console.log(`boat bench${quick ? ' --quick' : ''}: ${os.cpus().length} cores, Node ${process.version}`);
  console.log(`Images: ${source}`);
  const loader = await benchLoader(data, quick ? 320 : 1200);
  const threads = backend.threads; // PyTorch gets the same number
  // The GEMM is sampled before the network and again in every paired round, so that its best (the
  // limit) comes from the same stretch of a shared machine as the network's figures.
  const gemm = new NativeGemm(2048);
  await gemm.warmUp();
  for (let i = 0; i < 3; i++) gemm.sample();
  // PyTorch's reps alternate with ours at batch 8 (benchModel's paired reps), in a child process that
  // waits on its stdin while ours runs.
  const session = await TorchSession.start(threads, 8);
  const partner = session instanceof TorchSession ? new TorchPartner(session) : undefined;
  const model = await benchModel({
    batches: quick ? [1, 8] : [1, 8, 32],
    reps: quick ? 2 : 4,
    rounds: quick ? 3 : 5,
    accumulated128: !quick,
    partners: partner ? [partner, gemm] : [gemm],
  }).finally(() => partner?.session.close());
  const gemmRates = { fp32: gemm.rate('fp32'), bf16: gemm.rate('bf16') };
  const gflopsOf = (g: GemmRate): number | null => ('gflops' in g ? g.gflops : null);
  const torch = partner ? partner.result() : (session as { missing: string });
  const fe = await benchFeatureExtractor(data, quick ? 8 : 40, quick ? 1 : 2);
  const torchOk = 'forward_img_s' in torch ? torch : null;
  const ours = {
    forward: model.forward[8],
    train: model.trainImgS8,
    forwardBf16: 'reason' in model.bf16 ? null : model.bf16.forwardImgS8,
    trainBf16: 'reason' in model.bf16 ? null : model.bf16.trainImgS8,
  };
  const vsTorch = torchOk ? torchComparisonKeys(ours, torchOk) : null;
  const roofline = rooflineKeys({
    forwardFlopsPerImage: model.forwardFlopsPerImage,
    gemmFp32: gflopsOf(gemmRates.fp32),
    gemmBf16: gflopsOf(gemmRates.bf16),
    ...ours,
  });
  const gemmLine = (g: GemmRate): string =>
    'gflops' in g ? `${g.gflops.toFixed(1)} GFLOP/s (best of ${g.samples})` : `not measured: ${g.reason}`;
  const achieved = (gflopsKey: string, shareKey: string): string => {
    const [g, share] = [roofline[gflopsKey], roofline[shareKey]];
    if (g === null) return 'n/a';
    return `${g.toFixed(1)} GFLOP/s${share === null ? '' : ` = ${(100 * share).toFixed(0)}% of the GEMM rate`}`;
  };
  const torchFlops = torchOk?.forward_flops_per_image;
  const times = (key: string): string => {
    const v = vsTorch?.[key];
    return typeof v === 'number' ? v.toFixed(2) : 'n/a';
  };
  const peakRss = peakRssMb();
  const rows: Array<[string, string]> = [
    ['images measured', String(loader.images)],
    ['concurrency', String(loader.concurrency)],
    ['plain sharp decode+resize+crop (reference)', `${loader.plain_sharp_img_s.toFixed(1)} img/s`],
    ['JPEG decoder', loader.jpeg_decoder],
    [
      'loader, eval transforms',
      `${loader.loader_eval_img_s.toFixed(1)} img/s (${ratio(loader.loader_eval_img_s, loader.plain_sharp_img_s)} of plain sharp; target 200)`,
    ],
    [
      'loader, train transforms',
      `${loader.loader_train_img_s.toFixed(1)} img/s (${ratio(loader.loader_train_img_s, loader.plain_sharp_img_s)} of plain sharp; target 150)`,
    ],
    ...(loader.loader_eval_sharp_img_s !== undefined && loader.loader_train_sharp_img_s !== undefined
      ? [
          [
            'loader with sharp only, eval / train',
            `${loader.loader_eval_sharp_img_s.toFixed(1)} / ${loader.loader_train_sharp_img_s.toFixed(1)} img/s (JPEG addon off)`,
          ] as [string, string],
        ]
      : []),
    [
      'RandomResizedCrop decode, crop first / resize first',
      `${loader.rrc_exact_ms.toFixed(2)} / ${loader.rrc_grid_ms.toFixed(2)} ms per image (one at a time)`,
    ],
    ['prefetch: wait share with a busy consumer', `${(100 * loader.prefetch_wait_fraction).toFixed(1)}% of wall time`],
    [
      'prefetch: wall / (decode + consumer)',
      `${loader.prefetch_overlap_ratio.toFixed(2)} (0.5 = full overlap, 1 = none)`,
    ],
    ['backend', `${backend.line}; ${threads} thread(s) for both sides`],
    [`GEMM ${gemm.n}³ through oneDNN, fp32`, gemmLine(gemmRates.fp32)],
    [`GEMM ${gemm.n}³ through oneDNN, bf16`, gemmLine(gemmRates.bf16)],
    [
      'ResNet50 forward FLOPs per image, 224 px',
      `${(model.forwardFlopsPerImage / 1e9).toFixed(2)} GFLOP (2 × conv and dense multiply-adds, from the layer shapes; train step counted as ${TRAIN_STEP_FORWARDS}× that)`,
    ],
    [
      'paired reps at batch 8',
      `${model.paired.rounds} rounds of ours fp32, ours bf16${partner ? ', PyTorch' : ''}, the GEMM in turn; medians below (the GEMM: its best)`,
    ],
    ...Object.entries(model.forward).map(([b, v]): [string, string] => [
      `ResNet50 forward, batch ${b}`,
      `${v.toFixed(2)} img/s`,
    ]),
    [
      'ResNet50 forward, batch 8, BatchNorm folded / unfolded, taking turns',
      takingTurns(
        model.folding && [model.folding.foldedImgS8, model.folding.unfoldedImgS8],
        'folding',
        'n/a: this backbone is not folded',
      ),
    ],
    [
      'ResNet50 forward, batch 8, filter copies kept / reordered per call, taking turns',
      takingTurns(
        model.filterCache && [model.filterCache.cachedImgS8, model.filterCache.reorderedImgS8],
        'kept',
        'n/a: no native filter cache',
      ),
    ],
    [
      'first forward pass after train steps, batch 8, fp32',
      model.firstForwardMs !== null
        ? `${model.firstForwardMs.toFixed(1)} ms (BatchNorm refolded and filter copies made; untimed in the forward figures, which are inference on fixed weights)`
        : 'n/a',
    ],
    [
      'ResNet50 train step, batch 8',
      model.trainImgS8 !== null ? `${model.trainImgS8.toFixed(2)} img/s` : `not measured: ${model.trainSkipped}`,
    ],
    ...('reason' in model.bf16
      ? ([['bf16 precision', `not measured: ${model.bf16.reason}`]] as Array<[string, string]>)
      : ([
          [
            'ResNet50 forward, batch 8, bf16',
            `${model.bf16.forwardImgS8.toFixed(2)} img/s (${(model.bf16.forwardImgS8 / model.forward[8]).toFixed(2)}× fp32)`,
          ],
          [
            'ResNet50 train step, batch 8, bf16',
            model.bf16.trainImgS8 !== null && model.trainImgS8 !== null
              ? `${model.bf16.trainImgS8.toFixed(2)} img/s (${(model.bf16.trainImgS8 / model.trainImgS8).toFixed(2)}× fp32)`
              : 'n/a',
          ],
          [
            'ResNet50 train step, batch 8, bf16, backward inputs kept / converted per call, taking turns',
            takingTurns(
              model.gradientInputs && [model.gradientInputs.keptImgS8, model.gradientInputs.convertedImgS8],
              'kept',
            ),
          ],
          [
            'ResNet50 train step, batch 8, bf16, convolution gradients on NHWC / blocked layouts, taking turns',
            takingTurns(
              model.gradientLayouts && [model.gradientLayouts.nhwcImgS8, model.gradientLayouts.blockedImgS8],
              'NHWC',
            ),
          ],
          [
            'ResNet50 train step, batch 8, bf16, BatchNorm + ReLU in one kernel / two, taking turns',
            takingTurns(
              model.batchNormRelu && [model.batchNormRelu.fusedImgS8, model.batchNormRelu.separateImgS8],
              'fused',
            ),
          ],
          [
            'ResNet50 train step, batch 8, bf16, residual add + ReLU in one kernel / two, taking turns',
            takingTurns(model.addRelu && [model.addRelu.fusedImgS8, model.addRelu.separateImgS8], 'fused'),
          ],
          [
            "ResNet50 train step, batch 8, bf16, a block output's two gradients added inside ReLU's gradient / by an Add, taking turns",
            takingTurns(
              model.gradientSums && [model.gradientSums.fusedImgS8, model.gradientSums.separateImgS8],
              'fused',
            ),
          ],
          [
            'ResNet50 train step, batch 8, bf16, bf16 storage on / off, taking turns',
            takingTurns(model.bf16Storage && [model.bf16Storage.packedImgS8, model.bf16Storage.unpackedImgS8], 'on'),
          ],
        ] as Array<[string, string]>)),
    ['achieved, forward batch 8, fp32', achieved('forward_gflops_b8', 'forward_share_of_gemm_fp32')],
    ['achieved, train step batch 8, fp32', achieved('train_gflops_b8', 'train_share_of_gemm_fp32')],
    ['achieved, forward batch 8, bf16', achieved('forward_bf16_gflops_b8', 'forward_bf16_share_of_gemm_bf16')],
    ['achieved, train step batch 8, bf16', achieved('train_bf16_gflops_b8', 'train_bf16_share_of_gemm_bf16')],
    ...(model.wasmOnly
      ? ([
          [
            'wasm kernels alone (BOAT_NATIVE=0): forward, batch 8',
            `${model.wasmOnly.forwardImgS8.toFixed(2)} img/s → native kernels ${(model.forward[8] / model.wasmOnly.forwardImgS8).toFixed(1)}× faster`,
          ],
          [
            'wasm kernels alone: train step, batch 8',
            model.wasmOnly.trainImgS8 !== null && model.trainImgS8 !== null
              ? `${model.wasmOnly.trainImgS8.toFixed(2)} img/s → native kernels ${(model.trainImgS8 / model.wasmOnly.trainImgS8).toFixed(1)}× faster`
              : 'n/a',
          ],
        ] as Array<[string, string]>)
      : ([
          [
            'native kernels',
            `not used: ${backend.native && 'reason' in backend.native ? backend.native.reason : `backend ${backend.name}`}`,
          ],
        ] as Array<[string, string]>)),
    ['head step on cached features, batch 32', `${model.headStepMs.toFixed(1)} ms`],
    [
      'tutorial batch 128, passes as a fine-tune plans them',
      model.accumulated128
        ? `${model.accumulated128.passes} × ${model.accumulated128.passSize} images: ${model.accumulated128.seconds.toFixed(1)} s per step, peak RSS ${model.accumulated128.peakRssMb.toFixed(0)} MB (limit 8,192)${model.accumulated128.heapMb === null ? '' : `, wasm heap ${model.accumulated128.heapMb.toFixed(0)} MB (limit 4,096)`}`
        : quick
          ? 'not measured with --quick'
          : `not measured: ${model.trainSkipped}`,
    ],
    [
      `feature extractor, ${fe.epochs} epochs, ${fe.images} train+val images: cached`,
      `${fe.cachedSeconds.toFixed(1)} s (backbone once per image, then the head)`,
    ],
    [
      `feature extractor, ${fe.epochs} epochs: recomputing`,
      `${fe.recomputeSeconds.toFixed(1)} s (extrapolated from ${fe.recomputeEpochsMeasured} measured epoch${fe.recomputeEpochsMeasured === 1 ? '' : 's'}) → cached is ${(fe.recomputeSeconds / fe.cachedSeconds).toFixed(1)}× faster (target ≥ 10)`,
    ],
    ...(torchOk
      ? ([
          [
            'PyTorch ' + torchOk.torch_version + ' params (tutorial head)',
            `${torchOk.params.toLocaleString('en-US')} ${torchOk.params === 24_033_861 ? '(= 24,033,861, like for like)' : '(expected 24,033,861!)'}`,
          ],
          ...(torchFlops
            ? ([
                [
                  'PyTorch forward FLOPs per image (torchvision ResNet50 v1.5)',
                  `${(torchFlops / 1e9).toFixed(2)} GFLOP; its bf16 + channels_last at ${((torchOk.configs.bf16_channels_last.forward_img_s * torchFlops) / 1e9).toFixed(1)} / ${((torchOk.configs.bf16_channels_last.train_img_s * TRAIN_STEP_FORWARDS * torchFlops) / 1e9).toFixed(1)} GFLOP/s forward / train`,
                ],
              ] as Array<[string, string]>)
            : []),
          [
            'PyTorch fp32 NCHW (its default), batch 8',
            `forward ${torchOk.configs.nchw.forward_img_s.toFixed(2)}, train ${torchOk.configs.nchw.train_img_s.toFixed(2)} img/s → ours fp32 ÷ it: ${times('forward_ratio_b8')} / ${times('train_ratio_b8')}`,
          ],
          [
            'PyTorch fp32 channels_last, batch 8',
            `forward ${torchOk.configs.channels_last.forward_img_s.toFixed(2)}, train ${torchOk.configs.channels_last.train_img_s.toFixed(2)} img/s → ours fp32 ÷ it: ${times('forward_ratio_cl_b8')} / ${times('train_ratio_cl_b8')} (targets ≥ 1.2 / ≥ 1.0)`,
          ],
          [
            'PyTorch bf16 autocast + channels_last, batch 8',
            `forward ${torchOk.configs.bf16_channels_last.forward_img_s.toFixed(2)}, train ${torchOk.configs.bf16_channels_last.train_img_s.toFixed(2)} img/s → ours bf16 ÷ it: ${times('forward_ratio_bf16_b8')} / ${times('train_ratio_bf16_b8')} (targets ≥ 1.0 / ≥ 1.0)`,
          ],
        ] as Array<[string, string]>)
      : ([['PyTorch', `not run: ${(torch as { missing: string }).missing}`]] as Array<[string, string]>)),
    ['peak RSS after forward passes (feature extraction)', `${model.peakRssForwardMb.toFixed(0)} MB`],
    ['peak RSS after train steps', model.peakRssTrainMb !== null ? `${model.peakRssTrainMb.toFixed(0)} MB` : 'n/a'],
    ['peak RSS, whole bench', `${peakRss.toFixed(0)} MB`],
  ];
  const width = Math.max(...rows.map(([k]) => k.length));
  for (const [k, v] of rows) console.log(`  ${k.padEnd(width)}  ${v}`);
  console.log(`Took ${((Date.now() - started) / 1000).toFixed(0)} s.`);
  const json = flags.json;
  if (json) {
    writeJsonAtomic(json, {
      backend: backend.name,
      threads,
      images_source: source,
      loader_images: loader.images,
      loader_concurrency: loader.concurrency,
      loader_plain_sharp_img_s: loader.plain_sharp_img_s,
      loader_jpeg_decoder: loader.jpeg_decoder,
      loader_eval_img_s: loader.loader_eval_img_s,
      loader_train_img_s: loader.loader_train_img_s,
      loader_eval_sharp_img_s: loader.loader_eval_sharp_img_s,
      loader_train_sharp_img_s: loader.loader_train_sharp_img_s,
      loader_prefetch_wait_fraction: loader.prefetch_wait_fraction,
      loader_prefetch_overlap_ratio: loader.prefetch_overlap_ratio,
      loader_rrc_exact_ms: loader.rrc_exact_ms,
      loader_rrc_grid_ms: loader.rrc_grid_ms,
      forward_img_s_b1: model.forward[1] ?? null,
      forward_img_s_b8: model.forward[8] ?? null,
      forward_img_s_b32: model.forward[32] ?? null,
      forward_folded_ab_img_s_b8: model.folding?.foldedImgS8 ?? null,
      forward_unfolded_ab_img_s_b8: model.folding?.unfoldedImgS8 ?? null,
      first_forward_after_train_ms_b8: model.firstForwardMs,
      forward_filter_cache_ab_img_s_b8: model.filterCache?.cachedImgS8 ?? null,
      forward_no_filter_cache_ab_img_s_b8: model.filterCache?.reorderedImgS8 ?? null,
      train_img_s_b8: model.trainImgS8,
      forward_bf16_img_s_b8: 'reason' in model.bf16 ? null : model.bf16.forwardImgS8,
      train_bf16_img_s_b8: 'reason' in model.bf16 ? null : model.bf16.trainImgS8,
      train_bf16_gradient_inputs_ab_img_s_b8: model.gradientInputs?.keptImgS8 ?? null,
      train_bf16_no_gradient_inputs_ab_img_s_b8: model.gradientInputs?.convertedImgS8 ?? null,
      train_bf16_nhwc_gradients_ab_img_s_b8: model.gradientLayouts?.nhwcImgS8 ?? null,
      train_bf16_blocked_gradients_ab_img_s_b8: model.gradientLayouts?.blockedImgS8 ?? null,
      train_bf16_bn_relu_fused_ab_img_s_b8: model.batchNormRelu?.fusedImgS8 ?? null,
      train_bf16_bn_relu_separate_ab_img_s_b8: model.batchNormRelu?.separateImgS8 ?? null,
      train_bf16_add_relu_fused_ab_img_s_b8: model.addRelu?.fusedImgS8 ?? null,
      train_bf16_add_relu_separate_ab_img_s_b8: model.addRelu?.separateImgS8 ?? null,
      train_bf16_relu_grad_sum_ab_img_s_b8: model.gradientSums?.fusedImgS8 ?? null,
      train_bf16_relu_grad_after_add_ab_img_s_b8: model.gradientSums?.separateImgS8 ?? null,
      train_bf16_storage_ab_img_s_b8: model.bf16Storage?.packedImgS8 ?? null,
      train_bf16_no_storage_ab_img_s_b8: model.bf16Storage?.unpackedImgS8 ?? null,
      bf16_not_measured: 'reason' in model.bf16 ? model.bf16.reason : null,
      native_kernels: nativeKernelsInUse(),
      wasm_only_forward_img_s_b8: model.wasmOnly?.forwardImgS8 ?? null,
      wasm_only_train_img_s_b8: model.wasmOnly?.trainImgS8 ?? null,
      head_step_ms: model.headStepMs,
      accumulated_b128_s: model.accumulated128?.seconds ?? null,
      accumulated_b128_passes: model.accumulated128?.passes ?? null,
      accumulated_b128_pass_size: model.accumulated128?.passSize ?? null,
      wasm_heap_b128_mb: model.accumulated128?.heapMb ?? null,
      fe_images: fe.images,
      fe_epochs: fe.epochs,
      fe_cached_s: fe.cachedSeconds,
      fe_recompute_s: fe.recomputeSeconds,
      fe_recompute_epochs_measured: fe.recomputeEpochsMeasured,
      fe_speedup: fe.recomputeSeconds / fe.cachedSeconds,
      peak_rss_mb: peakRss,
      peak_rss_forward_mb: model.peakRssForwardMb,
      peak_rss_train_mb: model.peakRssTrainMb,
      peak_rss_train_b128_mb: model.accumulated128?.peakRssMb ?? null,
      gemm_size: gemm.n,
      gemm_fp32_samples: 'samples' in gemmRates.fp32 ? gemmRates.fp32.samples : 0,
      gemm_bf16_samples: 'samples' in gemmRates.bf16 ? gemmRates.bf16.samples : 0,
      gemm_fp32_not_measured: 'reason' in gemmRates.fp32 ? gemmRates.fp32.reason : null,
      gemm_bf16_not_measured: 'reason' in gemmRates.bf16 ? gemmRates.bf16.reason : null,
      ...roofline,
      paired_rounds: model.paired.rounds,
      paired_statistic: 'median',
      paired_with_torch: torchOk !== null,
      forward_img_s_b8_reps: model.paired.fp32.forward,
      train_img_s_b8_reps: model.paired.fp32.train,
      forward_bf16_img_s_b8_reps: model.paired.bf16?.forward ?? null,
      train_bf16_img_s_b8_reps: model.paired.bf16?.train ?? null,
      torch_forward_gflop_per_image: torchFlops !== undefined ? torchFlops / 1e9 : null,
      ...(vsTorch ?? {}),
    });
    console.log(`Wrote ${json}`);
  }
  if (!flags.data && data !== SHARED_PHOTOS) fs.rmSync(data, { recursive: true, force: true });
}

/** `boat bench --profile`: where a train step's and a forward pass's time goes (profile.ts). */
async function profileCommand(flags: BenchFlags): Promise<void> {
  const started = Date.now();
  console.log(`boat bench --profile: ${os.cpus().length} cores, Node ${process.version}`);
  const result = await benchProfile(PROFILE);
  console.log(result.backend);
  for (const line of formatProfile(result)) console.log(line);
  console.log(`Took ${((Date.now() - started) / 1000).toFixed(0)} s.`);
  if (flags.json) {
    writeJsonAtomic(flags.json, profileJson(result));
    console.log(`Wrote ${flags.json}`);
  }
}

/** "on / off img/s (label: on ÷ off×)" for a setting measured on and off taking turns, or `missing`. */
function takingTurns(pair: [number, number] | null, label: string, missing = 'n/a'): string {
  if (!pair) return missing;
  const [on, off] = pair;
  return `${on.toFixed(2)} / ${off.toFixed(2)} img/s (${label}: ${(on / off).toFixed(2)}×)`;
}

function ratio(a: number, b: number): string {
  return `${((100 * a) / b).toFixed(0)}%`;
}
