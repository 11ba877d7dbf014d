/**
 * The PyTorch side of `boat bench`: the JSON keys that compare ours with PyTorch's three CPU
 * configurations (fp32 NCHW, fp32 channels_last, bf16 autocast + channels_last), checked without PyTorch;
 * then bench/torch_resnet50.py itself as the bench runs it (a session answering rep by rep), when
 * Debian's PyTorch is installed, on tiny images.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';

import { parseTorchResult, torchComparisonKeys } from '../lib/bench/model';
import { checkTorchRep, TorchPartner, TorchSession } from '../lib/bench/torch-session';

const SAMPLE = {
  torch_version: '1.13.0a0',
  threads: 2,
  batch: 8,
  params: 24_033_861,
  forward_img_s: 10,
  train_img_s: 5,
  configs: {
    nchw: { forward_img_s: 10, train_img_s: 5 },
    channels_last: { forward_img_s: 16, train_img_s: 6 },
    bf16_channels_last: { forward_img_s: 32, train_img_s: 12 },
  },
};

test('the bench JSON compares ours with each PyTorch configuration under its own keys, keeping the old ones', () => {
  const keys = torchComparisonKeys(
    { forward: 20, train: 6, forwardBf16: 40, trainBf16: 9 },
    parseTorchResult(JSON.stringify(SAMPLE)),
  );
  assert.deepEqual(keys, {
    torch_version: '1.13.0a0',
    torch_params: 24_033_861,
    torch_forward_img_s_b8: 10,
    torch_train_img_s_b8: 5,
    forward_ratio_b8: 2,
    train_ratio_b8: 1.2,
    torch_cl_forward_img_s_b8: 16,
    torch_cl_train_img_s_b8: 6,
    forward_ratio_cl_b8: 1.25,
    train_ratio_cl_b8: 1,
    torch_bf16_forward_img_s_b8: 32,
    torch_bf16_train_img_s_b8: 12,
    forward_ratio_bf16_b8: 1.25,
    train_ratio_bf16_b8: 0.75,
  });
  // Without bf16 of our own (no native bf16) or a train step, those ratios are null, not NaN.
  const partial = torchComparisonKeys({ forward: 20, train: null, forwardBf16: null, trainBf16: null }, SAMPLE);
  assert.equal(partial.forward_ratio_bf16_b8, null);
  assert.equal(partial.train_ratio_bf16_b8, null);
  assert.equal(partial.train_ratio_cl_b8, null);
  assert.equal(partial.forward_ratio_cl_b8, 1.25);
});

test('a PyTorch result without one of the configurations is an error naming it', () => {
  const { bf16_channels_last: _dropped, ...rest } = SAMPLE.configs;
  assert.throws(
    () => parseTorchResult(JSON.stringify({ ...SAMPLE, configs: rest })),
    /PyTorch result lacks bf16_channels_last\.forward_img_s/,
  );
  assert.throws(
    () => parseTorchResult(JSON.stringify({ ...SAMPLE, configs: { ...SAMPLE.configs, nchw: { forward_img_s: 0 } } })),
    /PyTorch result lacks nchw\.forward_img_s/,
  );
});

const hasTorch = spawnSync('/usr/bin/python3', ['-c', 'import torch, torchvision'], { encoding: 'utf8' }).status === 0;

test("a PyTorch rep without a configuration, or the child's own error, is an error, not a NaN rate", () => {
  assert.deepEqual(checkTorchRep({ nchw: 1, channels_last: 0.5, bf16_channels_last: 0.25 }), {
    nchw: 1,
    channels_last: 0.5,
    bf16_channels_last: 0.25,
  });
  assert.throws(() => checkTorchRep({ nchw: 1, channels_last: 0.5 }), /PyTorch rep lacks bf16_channels_last/);
  assert.throws(() => checkTorchRep({ nchw: 1, channels_last: -1, bf16_channels_last: 1 }), /lacks channels_last/);
  assert.throws(() => checkTorchRep({ error: "unknown command 'x'" }), /PyTorch: unknown command 'x'/);
});

test('a PyTorch child that cannot start or exits at once is a reason, not a hang', async () => {
  assert.deepEqual(await TorchSession.start(1, 2, 64, '/nonexistent/python3'), {
    missing: '/nonexistent/python3 not found',
  });
  const failed = await TorchSession.start(1, 2, 64, '/bin/false');
  assert.deepEqual(failed, { missing: 'PyTorch run failed: python exited with code 1 before its first line' });
});

test(
  "bench/torch_resnet50.py --serve answers the bench's reps one by one, for all three configurations (64 px, batch 2)",
  {
    skip: hasTorch ? false : "Debian's PyTorch is not installed (apt-get install python3-torch python3-torchvision)",
    timeout: 900_000,
  },
  async () => {
    const session = await TorchSession.start(1, 2, 64);
    assert.ok(session instanceof TorchSession, JSON.stringify(session));
    assert.equal(session.info.params, 24_033_861, "the tutorial's head, like for like");
    // torchvision's ResNet50 (v1.5: stride in the 3×3) at 64 px: 668,338,688 FLOPs, 4.09 GMACs at 224 px
    assert.equal(session.info.forward_flops_per_image, 668_338_688);
    const partner = new TorchPartner(session);
    await partner.warmUp();
    for (const what of ['forward', 'train', 'forward', 'train'] as const) await partner.rep(what);
    await session.close();
    const result = partner.result();
    assert.ok('configs' in result, JSON.stringify(result));
    assert.equal(result.batch, 2);
    assert.equal(partner.seconds.train.bf16_channels_last.length, 2);
    const median = (v: number[]): number => (v[0] + v[1]) / 2;
    assert.equal(result.configs.channels_last.forward_img_s, 2 / median(partner.seconds.forward.channels_last));
    assert.equal(result.forward_img_s, result.configs.nchw.forward_img_s, 'the old keys are fp32 NCHW');
    // A request after the child has gone is a failure the partner reports, not a hang or a crash.
    await partner.rep('forward');
    const failed = partner.result();
    assert.ok('missing' in failed && failed.missing.startsWith('PyTorch run failed: PyTorch exited during "forward"'));
  },
);
