"""The sweep's fixtures under $SWEEP_ROOT/d: image folders, Fashion-MNIST and CIFAR files, weights, YAML configs."""
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file

from builders import checkpoint, class_folders, fashion_mnist, idx_file, image
from shared import D, ROOT

R = Path(D)
shutil.rmtree(R, ignore_errors=True)
R.mkdir(parents=True)


class Evil:
    """A pickle that runs a command when loaded: no loader may ever unpickle it."""

    def __init__(self, mark):
        self.mark = mark

    def __reduce__(self):
        return os.system, (f'touch {ROOT}/{self.mark}',)


# image folders
(R / 'empty').mkdir()
(R / 'trainonly_noclasses' / 'train').mkdir(parents=True); (R / 'trainonly_noclasses' / 'val').mkdir()
class_folders(R / 'oneclass', classes=('a',))
class_folders(R / 'good')
class_folders(R / 'noval', splits=('train',))
for split in ('train', 'val'):
    for c in ('a', 'b'):
        (R / 'emptyclass' / split / c).mkdir(parents=True)
class_folders(R / 'oneemptyclass'); shutil.rmtree(R / 'oneemptyclass' / 'train' / 'b'); (R / 'oneemptyclass' / 'train' / 'b').mkdir()
(R / 'trainisfile').mkdir(); (R / 'trainisfile' / 'train').write_text('x')
class_folders(R / 'filesinroot', splits=('val',)); (R / 'filesinroot' / 'train').mkdir(); image(R / 'filesinroot' / 'train' / 'x.png')
class_folders(R / 'symloop'); os.symlink('..', R / 'symloop' / 'train' / 'a' / 'loop')
class_folders(R / 'nonimage'); (R / 'nonimage' / 'train' / 'a' / 'bad.jpg').write_text('not an image'); (R / 'nonimage' / 'train' / 'a' / 'notes.txt').write_text('x')
class_folders(R / 'zerobyte'); (R / 'zerobyte' / 'train' / 'a' / 'z.png').write_bytes(b'')
class_folders(R / 'mixed')
for m in ('L', 'RGBA', 'CMYK', 'P', 'I;16', 'F', '1', 'LA', 'I'):
    ext = 'tiff' if m in ('F', 'CMYK', 'I') else 'png'
    image(R / 'mixed' / 'train' / 'a' / f'm_{m.replace(";", "")}.{ext}', m, size=(17 + len(m), 40))
image(R / 'mixed' / 'train' / 'b' / 'big.png', size=(300, 50))
class_folders(R / 'bomb'); Image.new('L', (15000, 15000)).save(R / 'bomb' / 'train' / 'a' / 'bomb.png')
class_folders(R / 'classmismatch'); shutil.rmtree(R / 'classmismatch' / 'val' / 'b'); class_folders(R / 'classmismatch', classes=('c',), splits=('val',))
class_folders(R / 'unreadable'); os.chmod(R / 'unreadable' / 'train' / 'a' / '0.png', 0)
class_folders(R / 'unreadabledir'); os.chmod(R / 'unreadabledir' / 'train' / 'a', 0)
# fashion mnist
fashion_mnist(R / 'fm_good')
fashion_mnist(R / 'fm_magic', images_args=dict(magic=0x0D))
fashion_mnist(R / 'fm_trunc', images_args=dict(cut=100))
fashion_mnist(R / 'fm_labels', labels=np.arange(20) * 13 % 256)
fashion_mnist(R / 'fm_count', labels=np.arange(15) % 10)
fashion_mnist(R / 'fm_gzbroken'); gz = R / 'fm_gzbroken' / 'train-images-idx3-ubyte.gz'; gz.write_bytes(gz.read_bytes()[:gz.stat().st_size // 2])
fashion_mnist(R / 'fm_notgz'); (R / 'fm_notgz' / 'train-images-idx3-ubyte.gz').write_bytes(b'plain bytes not gzip at all')
(R / 'fm_missing').mkdir()
fashion_mnist(R / 'fm_labels2d'); idx_file(R / 'fm_labels2d' / 'train-labels-idx1-ubyte', np.zeros((20, 2)))
fashion_mnist(R / 'fm_empty', n=0)
# cifar
BATCHES = ['data_batch_%d' % i for i in range(1, 6)] + ['test_batch', 'batches.meta']
for name, content in (('cifar_bad', {'x': 1}), ('cifar_evil', Evil('PWNED'))):
    c = R / name / 'cifar-10-batches-py'; c.mkdir(parents=True)
    for f in BATCHES:
        (c / f).write_bytes(pickle.dumps(content))
(R / 'cifar_empty_batches' / 'cifar-10-batches-py').mkdir(parents=True)
# weights
W = R / 'w'; W.mkdir()
m = checkpoint(W / 'good.pth')
checkpoint(W / 'depth3.pth', depth=3)
checkpoint(W / 'head7.pth', num_classes=7)
checkpoint(W / 'width.pth', 'edit_small_patch16_224')
checkpoint(W / 'deit3.pth', 'deit3_small_patch16_224')
torch.save({k: v.clone().fill_(float('nan')) if v.is_floating_point() else v.clone() for k, v in m.state_dict().items()},
           W / 'nan.pth')
(W / 'trunc.pth').write_bytes((W / 'good.pth').read_bytes()[:(W / 'good.pth').stat().st_size // 2])
(W / 'empty.pth').write_bytes(b'')
(W / 'dir.pth').mkdir()
(W / 'random.pth').write_bytes(os.urandom(5000))
(W / 'evil.pth').write_bytes(pickle.dumps(Evil('PWNED')))
save_file({k: v.half().contiguous() for k, v in m.state_dict().items()}, str(W / 'half.safetensors'))
save_file({k: v.contiguous() for k, v in m.state_dict().items()}, str(W / 'good.safetensors'))
save_file({k: (v * 0).to(torch.int32).contiguous() for k, v in m.state_dict().items()}, str(W / 'int.safetensors'))
torch.save([1, 2, 3], W / 'list.pth')
torch.save({'model': {'foo': torch.zeros(3)}}, W / 'foo.pth')
torch.save({'epoch': 3}, W / 'nomodel.pth')
torch.save(torch.zeros(3), W / 'tensor.pth')
# yaml configs
Y = R / 'y'; Y.mkdir()
for name, text in {
    'notyaml': 'model: [unclosed\n  : :',
    'list': '- a\n- b\n',
    'unknown': 'modle: x\n',
    'wrongtype': 'epochs: many\n',
    'huge': 'epochs: 1e400\n',
    'hugeint': 'batch_size: 100000000000000000000\n',
    'neg': 'lr: -1\n',
    'strnum': 'lr: "0.001"\n',
    'empty': '',
    'scalar': '42\n',
    'kwlist': 'model_kwargs: [1, 2]\n',
    'boolstr': 'ema: "yes please"\n',
    'nulls': 'epochs: null\nbatch_size: null\n',
    'tag': f'epochs: !!python/object/apply:os.system ["touch {ROOT}/PWNED2"]\n',
}.items():
    (Y / f'{name}.yaml').write_text(text)
(Y / 'binary.yaml').write_bytes(os.urandom(300))
print('fixtures ok')
