#!/usr/bin/python3
"""Regenerates the fixtures of test/images-shrink-reference.test.ts: a photo large enough for the JPEG
addon's DCT-domain shrink (retina.jpg, 1411 x 1411, CC0, shipped by Debian's python3-skimage, copied
byte for byte) and torchvision/PIL outputs of the loader's resizes on it.

Run with Debian's Python (apt-get install python3-torchvision python3-pil python3-skimage):
    /usr/bin/python3 scripts/make-shrink-references.py
Nothing at runtime depends on Python; only these committed files are used by the tests.
"""
import json
import os
import shutil

from PIL import Image
import torchvision
import torchvision.transforms as T
import torchvision.transforms.functional as TF

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, '..', 'test', 'fixtures')
SOURCE = '/usr/lib/python3/dist-packages/skimage/data/retina.jpg'
PHOTO = os.path.join('photos', 'retina.jpg')
# (top, left, height, width) boxes for resized_crop to 224: the whole photo (a 6.3x shrink, so the
# DCT-domain shrink is 4) and a RandomResizedCrop-like box (4.0x, shrink 2).
BOXES = {'whole': (0, 0, 1411, 1411), 'box': (250, 300, 900, 1000)}

shutil.copyfile(SOURCE, os.path.join(FIXTURES, PHOTO))
img = Image.open(os.path.join(FIXTURES, PHOTO)).convert('RGB')
meta = {'torchvision': torchvision.__version__, 'pillow': Image.__version__, 'cases': []}


def save(kind, out, **params):
    path = os.path.join('reference', f'retina_{kind}.png')
    out.save(os.path.join(FIXTURES, path))
    meta['cases'].append({'kind': kind, 'input': PHOTO, 'reference': path, **params})


save('resize256_crop224', T.Compose([T.Resize(256), T.CenterCrop(224)])(img))
for name, (top, left, h, w) in BOXES.items():
    save(f'resized_crop224_{name}', TF.resized_crop(img, top, left, h, w, [224, 224]), box={'top': top, 'left': left, 'height': h, 'width': w})

with open(os.path.join(FIXTURES, 'reference', 'shrink-cases.json'), 'w') as f:
    json.dump(meta, f, indent=2)
print('wrote', len(meta['cases']), 'reference images')
