/**
 * The PyTorch side of `boat bench`: the JSON keys that compare ours with PyTorch's three CPU
 * configurations (fp32 NCHW, fp32 channels_last, bf16 autocast + channels_last), checked without PyTorch;
 * then bench/torch_resnet50.py itself, when Debian's PyTorch is installed, on tiny images.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { test } from 'node:test';

import { parseTorchResult, torchComparisonKeys } from '../lib/bench/model';
import { REPO_ROOT } from './helpers';

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

test(
  'bench/torch_resnet50.py prints what the bench reads, for all three configurations (64 px, batch 2, one rep)',
  {
    skip: hasTorch ? false : "Debian's PyTorch is not installed (apt-get install python3-torch python3-torchvision)",
    timeout: 900_000,
  },
  () => {
    const script = path.join(REPO_ROOT, 'bench', 'torch_resnet50.py');
    const r = spawnSync('/usr/bin/python3', [script, '1', '2', '1', '64'], { encoding: 'utf8', timeout: 900_000 });
    assert.equal(r.status, 0, r.stderr);
    const result = parseTorchResult(r.stdout.trim().split('\n').pop()!);
    assert.equal(result.params, 24_033_861, "the tutorial's head, like for like");
    assert.equal(result.batch, 2);
    assert.equal(result.forward_img_s, result.configs.nchw.forward_img_s, 'the old keys are fp32 NCHW');
  },
);
