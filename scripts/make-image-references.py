#!/usr/bin/python3
"""Regenerates test/fixtures: small public-domain/CC0 photos from Debian's python3-skimage, and
torchvision/PIL reference outputs that test/images-reference.test.ts compares the sharp transforms with.

Run with Debian's Python (apt-get install python3-torchvision python3-pil python3-skimage):
    /usr/bin/python3 scripts/make-image-references.py
Nothing at runtime depends on Python; only these committed files are used by the tests.
"""
import json
import os

from PIL import Image
import torchvision
import torchvision.transforms as T
import torchvision.transforms.functional as TF

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, '..', 'test', 'fixtures')
SKIMAGE_DATA = '/usr/lib/python3/dist-packages/skimage/data'
PHOTOS = ['chelsea', 'coffee', 'astronaut']
# A fixed crop box (top, left, height, width) per photo for the resized-crop reference.
BOXES = {'chelsea': (20, 40, 250, 300), 'coffee': (30, 100, 350, 420), 'astronaut': (0, 60, 480, 400)}

os.makedirs(os.path.join(FIXTURES, 'photos'), exist_ok=True)
os.makedirs(os.path.join(FIXTURES, 'reference'), exist_ok=True)
meta = {'torchvision': torchvision.__version__, 'pillow': Image.__version__, 'cases': []}
for name in PHOTOS:
    photo = os.path.join(FIXTURES, 'photos', name + '.jpg')
    Image.open(os.path.join(SKIMAGE_DATA, name + '.png')).convert('RGB').save(photo, quality=92)
    img = Image.open(photo).convert('RGB')

    def save(kind, out, **params):
        params.setdefault('input', f'photos/{name}.jpg')
        path = os.path.join('reference', f'{name}_{kind}.png')
        out.save(os.path.join(FIXTURES, path))
        meta['cases'].append({'kind': kind, 'reference': path, **params})

    save('resize256_crop224', T.Compose([T.Resize(256), T.CenterCrop(224)])(img))
    top, left, h, w = BOXES[name]
    save('resized_crop256', TF.resized_crop(img, top, left, h, w, [256, 256]), box={'top': top, 'left': left, 'height': h, 'width': w})
    # Rotation and flip start from the (lossless) 224 crop above, so both sides see identical pixels.
    crop = Image.open(os.path.join(FIXTURES, 'reference', f'{name}_resize256_crop224.png')).convert('RGB')
    save('rotate10', TF.rotate(crop, 10.0), angle=10.0, input=f'reference/{name}_resize256_crop224.png')
    save('hflip', TF.hflip(crop), input=f'reference/{name}_resize256_crop224.png')

with open(os.path.join(FIXTURES, 'reference', 'cases.json'), 'w') as f:
    json.dump(meta, f, indent=2)
print('wrote', len(meta['cases']), 'reference images')
