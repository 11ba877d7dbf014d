#!/usr/bin/python3
"""PyTorch side of `boat bench`: torchvision ResNet50 with the tutorial's head (random weights, nothing
downloaded), forward and train-step throughput at one batch size, with a fixed thread count, in three
CPU configurations: fp32 NCHW (PyTorch's default), fp32 channels_last, and bf16 autocast + channels_last
(PyTorch's fastest on a CPU with native bf16). Each measurement follows two warm-ups (oneDNN creates its
primitives on first use), and the configurations take turns rep by rep, so none gets a quieter minute.
Prints one JSON object. Run with Debian's Python: apt-get install python3-torch python3-torchvision.

    /usr/bin/python3 bench/torch_resnet50.py THREADS BATCH REPS [SIZE]    (SIZE: image side, default 224)"""
import json
import sys
import time

import torch
import torch.nn as nn
import torchvision

threads, batch, reps = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
size = int(sys.argv[4]) if len(sys.argv) > 4 else 224
torch.set_num_threads(threads)
torch.manual_seed(0)
model = torchvision.models.resnet50()
model.fc = nn.Sequential(nn.Linear(2048, 256), nn.ReLU(), nn.Dropout(0.4), nn.Linear(256, 5), nn.LogSoftmax(dim=1))
params = sum(p.numel() for p in model.parameters())
x = torch.randn(batch, 3, size, size)
y = torch.randint(0, 5, (batch,))
opt = torch.optim.SGD(model.parameters(), lr=0.001, momentum=0.9)

# name: (channels_last, bf16 autocast)
CONFIGS = {'nchw': (False, False), 'channels_last': (True, False), 'bf16_channels_last': (True, True)}


def prepare(channels_last):
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model.to(memory_format=fmt)
    return x.contiguous(memory_format=fmt)


def forward(xx, bf16):
    model.eval()
    with torch.no_grad(), torch.autocast('cpu', dtype=torch.bfloat16, enabled=bf16):
        model(xx)


def train(xx, bf16):
    model.train()
    opt.zero_grad()
    with torch.autocast('cpu', dtype=torch.bfloat16, enabled=bf16):
        out = model(xx)
    nn.functional.nll_loss(out.float(), y).backward()  # the loss in fp32, as autocast leaves it
    opt.step()


def timed(fn, xx, bf16):
    t = time.perf_counter()
    fn(xx, bf16)
    return time.perf_counter() - t


results = {}
for what, fn in (('forward', forward), ('train', train)):
    seconds = {name: 0.0 for name in CONFIGS}
    for name, (channels_last, bf16) in CONFIGS.items():
        xx = prepare(channels_last)
        fn(xx, bf16)
        fn(xx, bf16)
    for _ in range(reps):
        for name, (channels_last, bf16) in CONFIGS.items():
            xx = prepare(channels_last)
            seconds[name] += timed(fn, xx, bf16)
    for name in CONFIGS:
        results.setdefault(name, {})[f'{what}_img_s'] = batch * reps / seconds[name]

print(json.dumps({'torch_version': torch.__version__, 'threads': threads, 'batch': batch, 'size': size,
                  'params': params, 'reps': reps, 'warmups': 2,
                  # fp32 NCHW under the names the bench has always read
                  'forward_img_s': results['nchw']['forward_img_s'], 'train_img_s': results['nchw']['train_img_s'],
                  'configs': results}))
