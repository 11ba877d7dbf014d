#!/usr/bin/python3
"""PyTorch side of `boat bench`: torchvision ResNet50 with the tutorial's head (random weights, nothing
downloaded), forward and train-step throughput at one batch size, with a fixed thread count, in three
CPU configurations: fp32 NCHW (PyTorch's default), fp32 channels_last, and bf16 autocast + channels_last
(PyTorch's fastest on a CPU with native bf16). Each measurement follows two warm-ups (oneDNN creates its
primitives on first use), and the configurations take turns rep by rep, so none gets a quieter minute.
Run with Debian's Python: apt-get install python3-torch python3-torchvision.

    /usr/bin/python3 bench/torch_resnet50.py THREADS BATCH REPS [SIZE]    (SIZE: image side, default 224)

prints one JSON object with the median img/s of the reps.

    /usr/bin/python3 bench/torch_resnet50.py --serve THREADS BATCH [SIZE]

is how `boat bench` runs it, so that its reps alternate with the engine's: it prints a JSON line
describing the model, then answers each line read on stdin with one JSON line: `warmup` (two warm-ups of
forward and train step in each configuration), `forward` or `train` (one timed rep in each configuration,
in seconds). It exits at the end of stdin."""
import json
import statistics
import sys
import time

import torch
import torch.nn as nn
import torchvision

serve = sys.argv[1] == '--serve'
args = sys.argv[2:] if serve else sys.argv[1:]
threads, batch = int(args[0]), int(args[1])
reps = 0 if serve else int(args[2])
rest = args[2:] if serve else args[3:]
size = int(rest[0]) if rest else 224
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


def forward_flops():
    """Floating-point operations of one image's forward pass: 2 per multiply-add of the convolutions and
    linear layers (what the engine's count covers too; BatchNorm, ReLU, pooling and adds are left out)."""
    total = [0]

    def conv(m, _inputs, out):
        total[0] += 2 * out[0].numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]

    def linear(m, _inputs, out):
        total[0] += 2 * out[0].numel() * m.in_features

    hooks = [m.register_forward_hook(conv) for m in model.modules() if isinstance(m, nn.Conv2d)]
    hooks += [m.register_forward_hook(linear) for m in model.modules() if isinstance(m, nn.Linear)]
    model.eval()
    with torch.no_grad():
        model(x[:1])
    for h in hooks:
        h.remove()
    return total[0]


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


STEPS = {'forward': forward, 'train': train}


def warmup():
    for fn in STEPS.values():
        for channels_last, bf16 in CONFIGS.values():
            xx = prepare(channels_last)
            fn(xx, bf16)
            fn(xx, bf16)


def rep(what):
    """Seconds of one `what` in each configuration, the configurations in turn."""
    seconds = {}
    for name, (channels_last, bf16) in CONFIGS.items():
        xx = prepare(channels_last)
        t = time.perf_counter()
        STEPS[what](xx, bf16)
        seconds[name] = time.perf_counter() - t
    return seconds


info = {'torch_version': torch.__version__, 'threads': threads, 'batch': batch, 'size': size, 'params': params,
        'warmups': 2, 'forward_flops_per_image': forward_flops()}


def reply(obj):
    print(json.dumps(obj), flush=True)


if serve:
    reply({'ready': True, **info})
    for line in sys.stdin:
        command = line.strip()
        if command == 'warmup':
            warmup()
            reply({'ok': True})
        elif command in STEPS:
            reply(rep(command))
        elif command:
            reply({'error': f'unknown command {command!r}'})
    sys.exit(0)

warmup()
seconds = {what: {name: [] for name in CONFIGS} for what in STEPS}
for _ in range(reps):
    for what in STEPS:
        for name, s in rep(what).items():
            seconds[what][name].append(s)
results = {name: {f'{what}_img_s': batch / statistics.median(seconds[what][name]) for what in STEPS} for name in CONFIGS}
reply({**info, 'reps': reps, 'statistic': 'median',
       # fp32 NCHW under the names the bench has always read
       'forward_img_s': results['nchw']['forward_img_s'], 'train_img_s': results['nchw']['train_img_s'],
       'configs': results})
