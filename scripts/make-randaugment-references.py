#!/usr/bin/python3
"""Regenerates test/fixtures/reference/randaugment: torchvision's RandAugment operations on small PIL
images, which test/images-rand-augment.test.ts compares lib/images/pillow.ts and rand-augment.ts with.

Run with Debian's Python (apt-get install python3-torchvision python3-pil):
    /usr/bin/python3 scripts/make-randaugment-references.py
Nothing at runtime depends on Python; only these committed files are used by the tests.
"""
import json
import os

import torchvision
from PIL import Image
from torchvision.transforms import InterpolationMode, RandAugment
from torchvision.transforms.autoaugment import _apply_op

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, '..', 'test', 'fixtures')
OUT = os.path.join(FIXTURES, 'reference', 'randaugment')
# Small crops of the 224 px references (landscape and portrait, so that the translations differ per axis).
INPUTS = {'chelsea': (40, 30), 'astronaut': (30, 40)}
BINS = [0, 9, 30]

os.makedirs(OUT, exist_ok=True)
meta = {'torchvision': torchvision.__version__, 'pillow': Image.__version__, 'inputs': {}, 'magnitudes': {}, 'cases': []}
for name, size in INPUTS.items():
    src = Image.open(os.path.join(FIXTURES, 'reference', f'{name}_resize256_crop224.png')).convert('RGB')
    img = src.resize(size, Image.BILINEAR)
    img.save(os.path.join(OUT, f'{name}.png'))
    meta['inputs'][name] = f'reference/randaugment/{name}.png'
    ops = RandAugment()._augmentation_space(31, (size[1], size[0]))
    meta['magnitudes'][name] = {op: [float(v) for v in (m.tolist() if m.ndim > 0 else [m.item()])] for op, (m, _) in ops.items()}
    for op, (magnitudes, signed) in ops.items():
        if op == 'Identity':
            continue
        for b in BINS if magnitudes.ndim > 0 else [0]:
            for sign in ([1, -1] if signed and b > 0 else [1]):
                magnitude = float(magnitudes[b].item()) * sign if magnitudes.ndim > 0 else 0.0
                out = _apply_op(img, op, magnitude, interpolation=InterpolationMode.NEAREST, fill=None)
                path = f'reference/randaugment/{name}_{op}_{b}{"n" if sign < 0 else ""}.png'
                out.save(os.path.join(FIXTURES, path))
                meta['cases'].append({'input': name, 'op': op, 'magnitude': magnitude, 'reference': path})

with open(os.path.join(OUT, 'cases.json'), 'w') as f:
    json.dump(meta, f, indent=1)
print('wrote', len(meta['cases']), 'reference images')
