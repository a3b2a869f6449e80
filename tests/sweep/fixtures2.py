import os, shutil, numpy as np
from pathlib import Path
from PIL import Image
R = Path('/tmp/sweep/d')
def seg(root, n=4, size=(32, 32), classes=('bg', 'fg'), mask_size=None, mask_max=1, mask_mode='L', missing=False, classes_txt=True):
    shutil.rmtree(root, ignore_errors=True)
    for s in ('train', 'val'):
        (root / 'images' / s).mkdir(parents=True); (root / 'masks' / s).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(np.random.randint(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(root / 'images' / s / f'{i}.png')
            if missing and i == 0: continue
            ms = mask_size or size
            m = np.random.randint(0, mask_max + 1, (ms[1], ms[0])).astype(np.uint8 if mask_mode != 'I;16' else np.uint16)
            if mask_mode == 'RGB': Image.fromarray(np.stack([m] * 3, -1)).save(root / 'masks' / s / f'{i}.png')
            else: Image.fromarray(m).save(root / 'masks' / s / f'{i}.png')
    if classes_txt: (root / 'classes.txt').write_text('\n'.join(classes) + '\n')
seg(R / 'seg_good')
seg(R / 'seg_masksize', mask_size=(16, 20))
seg(R / 'seg_labelrange', mask_max=7)
seg(R / 'seg_missing', missing=True)
seg(R / 'seg_noclasses', classes_txt=False)
seg(R / 'seg_emptyclasses', classes=())
seg(R / 'seg_rgbmask', mask_mode='RGB')
seg(R / 'seg_16bit', mask_mode='I;16', mask_max=300)
seg(R / 'seg_oneclass', classes=('bg',))
seg(R / 'seg_small', size=(8, 8))
seg(R / 'seg_mixed'); Image.fromarray(np.zeros((50, 70, 3), np.uint8)).save(R / 'seg_mixed' / 'images' / 'train' / '9.png'); Image.fromarray(np.zeros((50, 70), np.uint8)).save(R / 'seg_mixed' / 'masks' / 'train' / '9.png')
seg(R / 'seg_dupclasses', classes=('a', 'a'))
seg(R / 'seg_noval'); shutil.rmtree(R / 'seg_noval' / 'images' / 'val'); shutil.rmtree(R / 'seg_noval' / 'masks' / 'val')
seg(R / 'seg_nonimage'); (R / 'seg_nonimage' / 'images' / 'train' / '0.png').write_text('garbage')
seg(R / 'seg_badmask'); (R / 'seg_badmask' / 'masks' / 'train' / '0.png').write_text('garbage')
# analyze images
A = R / 'img'; A.mkdir(exist_ok=True)
(A / 'empty').mkdir(exist_ok=True)
(A / 'text').mkdir(exist_ok=True); (A / 'text' / 'a.txt').write_text('x'); (A / 'text' / 'b.jpg').write_text('x')
(A / 'modes').mkdir(exist_ok=True)
for m in ('L', 'RGBA', 'P', 'CMYK', 'I;16'):
    im = Image.fromarray(np.random.randint(0, 255, (40, 30, 3), dtype=np.uint8))
    if m == 'I;16': im = Image.fromarray(np.random.randint(0, 65535, (40, 30)).astype(np.uint16))
    else: im = im.convert(m)
    im.save(A / 'modes' / f"{m.replace(';', '')}.{'tiff' if m == 'CMYK' else 'png'}")
Image.new('L', (15000, 15000)).save(A / 'bomb.png')
Image.new('RGB', (1, 1)).save(A / 'tiny.png')
(A / 'zero.png').write_bytes(b'')
print('ok')
r = R / 'seg_ignore'; shutil.rmtree(r, ignore_errors=True); shutil.copytree(R / 'seg_good', r)
for m in r.glob('masks/*/*.png'):
    Image.fromarray(np.full((32, 32), 255, np.uint8)).save(m)
