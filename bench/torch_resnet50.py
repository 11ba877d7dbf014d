#!/usr/bin/python3
"""PyTorch side of `boat bench`: torchvision ResNet50 with the tutorial's head (random weights, nothing
downloaded), forward and train-step throughput at one batch size, with a fixed thread count.
Prints one JSON object. Run with Debian's Python: apt-get install python3-torch python3-torchvision."""
import json
import sys
import time

import torch
import torch.nn as nn
import torchvision

threads, batch, reps = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(threads)
model = torchvision.models.resnet50()
model.fc = nn.Sequential(nn.Linear(2048, 256), nn.ReLU(), nn.Dropout(0.4), nn.Linear(256, 5), nn.LogSoftmax(dim=1))
params = sum(p.numel() for p in model.parameters())
x = torch.randn(batch, 3, 224, 224)
y = torch.randint(0, 5, (batch,))

model.eval()
with torch.no_grad():
    model(x)
    t = time.perf_counter()
    for _ in range(reps):
        model(x)
    forward = batch * reps / (time.perf_counter() - t)

model.train()
opt = torch.optim.SGD(model.parameters(), lr=0.001, momentum=0.9)
loss_fn = nn.NLLLoss()
def step():
    opt.zero_grad()
    loss_fn(model(x), y).backward()
    opt.step()
step()
t = time.perf_counter()
for _ in range(reps):
    step()
train = batch * reps / (time.perf_counter() - t)
print(json.dumps({'torch_version': torch.__version__, 'threads': threads, 'batch': batch, 'params': params,
                  'forward_img_s': forward, 'train_img_s': train}))
