"""More of the sweep's fixtures under $SWEEP_ROOT/d: image + mask folders for segmentation, images for analyze."""
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from builders import image, mask_folders
from shared import D

R = Path(D)
mask_folders(R / 'seg_good')
mask_folders(R / 'seg_masksize', mask_size=(16, 20))
mask_folders(R / 'seg_labelrange', mask_max=7)
mask_folders(R / 'seg_missing', missing=True)
mask_folders(R / 'seg_noclasses', classes_txt=False)
mask_folders(R / 'seg_emptyclasses', classes=())
mask_folders(R / 'seg_rgbmask', mask_mode='RGB')
mask_folders(R / 'seg_16bit', mask_mode='I;16', mask_max=300)
mask_folders(R / 'seg_oneclass', classes=('bg',))
mask_folders(R / 'seg_small', size=(8, 8))
mask_folders(R / 'seg_mixed')
Image.fromarray(np.zeros((50, 70, 3), np.uint8)).save(R / 'seg_mixed' / 'images' / 'train' / '9.png')
Image.fromarray(np.zeros((50, 70), np.uint8)).save(R / 'seg_mixed' / 'masks' / 'train' / '9.png')
mask_folders(R / 'seg_dupclasses', classes=('a', 'a'))
mask_folders(R / 'seg_noval'); shutil.rmtree(R / 'seg_noval' / 'images' / 'val'); shutil.rmtree(R / 'seg_noval' / 'masks' / 'val')
mask_folders(R / 'seg_nonimage'); (R / 'seg_nonimage' / 'images' / 'train' / '0.png').write_text('garbage')
mask_folders(R / 'seg_badmask'); (R / 'seg_badmask' / 'masks' / 'train' / '0.png').write_text('garbage')
r = R / 'seg_ignore'; shutil.rmtree(r, ignore_errors=True); shutil.copytree(R / 'seg_good', r)
for m in r.glob('masks/*/*.png'):
    Image.fromarray(np.full((32, 32), 255, np.uint8)).save(m)
# analyze images
A = R / 'img'; A.mkdir(exist_ok=True)
(A / 'empty').mkdir(exist_ok=True)
(A / 'text').mkdir(exist_ok=True); (A / 'text' / 'a.txt').write_text('x'); (A / 'text' / 'b.jpg').write_text('x')
for m in ('L', 'RGBA', 'P', 'CMYK', 'I;16'):
    image(A / 'modes' / f"{m.replace(';', '')}.{'tiff' if m == 'CMYK' else 'png'}", m, size=(30, 40))
Image.new('L', (15000, 15000)).save(A / 'bomb.png')
Image.new('RGB', (1, 1)).save(A / 'tiny.png')
(A / 'zero.png').write_bytes(b'')
print('ok')
