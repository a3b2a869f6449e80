import gzip, os, pickle, shutil, struct, numpy as np, torch
from pathlib import Path
from PIL import Image
R = Path('/tmp/sweep/d'); shutil.rmtree(R, ignore_errors=True); R.mkdir(parents=True)
def img(p, mode='RGB', size=(32, 32), **kw):
    p = Path(p); p.parent.mkdir(parents=True, exist_ok=True)
    a = np.random.RandomState(0).randint(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    im = Image.fromarray(a)
    if mode == 'I;16':
        im = Image.fromarray((np.random.RandomState(0).randint(0, 65535, (size[1], size[0]))).astype(np.uint16))
    elif mode == 'F':
        im = Image.fromarray(np.random.RandomState(0).rand(size[1], size[0]).astype(np.float32))
    elif mode != 'RGB':
        im = im.convert(mode)
    im.save(p, **kw)
def good(root, classes=('a', 'b'), n=4, splits=('train', 'val')):
    for s in splits:
        for c in classes:
            for i in range(n): img(root / s / c / f'{i}.png')
(R / 'empty').mkdir()
(R / 'trainonly_noclasses' / 'train').mkdir(parents=True); (R / 'trainonly_noclasses' / 'val').mkdir()
good(R / 'oneclass', classes=('a',))
good(R / 'good')
good(R / 'noval', splits=('train',))
(R / 'emptyclass' / 'train' / 'a').mkdir(parents=True); (R / 'emptyclass' / 'train' / 'b').mkdir(); (R / 'emptyclass' / 'val' / 'a').mkdir(parents=True); (R / 'emptyclass' / 'val' / 'b').mkdir()
good(R / 'oneemptyclass'); shutil.rmtree(R / 'oneemptyclass' / 'train' / 'b'); (R / 'oneemptyclass' / 'train' / 'b').mkdir()
(R / 'trainisfile').mkdir(); (R / 'trainisfile' / 'train').write_text('x')
good(R / 'filesinroot', splits=('val',)); (R / 'filesinroot' / 'train').mkdir(); img(R / 'filesinroot' / 'train' / 'x.png')
good(R / 'symloop'); os.symlink('..', R / 'symloop' / 'train' / 'a' / 'loop')
good(R / 'nonimage'); (R / 'nonimage' / 'train' / 'a' / 'bad.jpg').write_text('not an image'); (R / 'nonimage' / 'train' / 'a' / 'notes.txt').write_text('x')
good(R / 'zerobyte'); (R / 'zerobyte' / 'train' / 'a' / 'z.png').write_bytes(b'')
good(R / 'mixed')
for m in ('L', 'RGBA', 'CMYK', 'P', 'I;16', 'F', '1', 'LA', 'I'):
    ext = 'tiff' if m in ('F', 'CMYK', 'I') else 'png'
    img(R / 'mixed' / 'train' / 'a' / f'm_{m.replace(";", "")}.{ext}', m, size=(17 + len(m), 40))
img(R / 'mixed' / 'train' / 'b' / 'big.png', size=(300, 50))
good(R / 'bomb'); Image.new('L', (15000, 15000)).save(R / 'bomb' / 'train' / 'a' / 'bomb.png')
good(R / 'classmismatch'); shutil.rmtree(R / 'classmismatch' / 'val' / 'b'); good(R / 'classmismatch', classes=('c',), splits=('val',))
good(R / 'unreadable'); os.chmod(R / 'unreadable' / 'train' / 'a' / '0.png', 0)
good(R / 'unreadabledir'); os.chmod(R / 'unreadabledir' / 'train' / 'a', 0)
# fashion mnist
def idx(path, arr, magic=0x08, gz=True, cut=0):
    hdr = bytes([0, 0, magic, arr.ndim]) + b''.join(struct.pack('>I', s) for s in arr.shape)
    data = hdr + arr.astype(np.uint8).tobytes()
    if cut: data = data[:-cut]
    if gz: gzip.open(str(path) + '.gz', 'wb').write(data)
    else: open(path, 'wb').write(data)
def fm(root, n=20, labels=None, **kw):
    root.mkdir(parents=True)
    for s in ('train', 't10k'):
        idx(root / f'{s}-images-idx3-ubyte', np.random.randint(0, 255, (n, 28, 28)), **kw.get('img', {}))
        idx(root / f'{s}-labels-idx1-ubyte', labels if labels is not None else np.arange(n) % 10, **kw.get('lab', {}))
fm(R / 'fm_good')
fm(R / 'fm_magic', img=dict(magic=0x0D))
fm(R / 'fm_trunc', img=dict(cut=100))
fm(R / 'fm_labels', labels=np.arange(20) * 13 % 256)
fm(R / 'fm_count', labels=np.arange(15) % 10)
fm(R / 'fm_gzbroken'); d = open(R / 'fm_gzbroken' / 'train-images-idx3-ubyte.gz', 'rb').read(); open(R / 'fm_gzbroken' / 'train-images-idx3-ubyte.gz', 'wb').write(d[:len(d) // 2])
fm(R / 'fm_notgz'); open(R / 'fm_notgz' / 'train-images-idx3-ubyte.gz', 'wb').write(b'plain bytes not gzip at all')
(R / 'fm_missing').mkdir()
fm(R / 'fm_labels2d'); idx(R / 'fm_labels2d' / 'train-labels-idx1-ubyte', np.zeros((20, 2)))
fm(R / 'fm_empty', n=0)
# cifar
c = R / 'cifar_bad' / 'cifar-10-batches-py'; c.mkdir(parents=True)
for f in ['data_batch_%d' % i for i in range(1, 6)] + ['test_batch', 'batches.meta']:
    pickle.dump({'x': 1}, open(c / f, 'wb'))
c = R / 'cifar_evil' / 'cifar-10-batches-py'; c.mkdir(parents=True)
class Evil:
    def __reduce__(self): return (os.system, ('touch /tmp/sweep/PWNED',))
for f in ['data_batch_%d' % i for i in range(1, 6)] + ['test_batch', 'batches.meta']:
    pickle.dump(Evil(), open(c / f, 'wb'))
(R / 'cifar_empty_batches' / 'cifar-10-batches-py').mkdir(parents=True)
# weights
W = R / 'w'; W.mkdir()
import timm, editvit
m = timm.create_model('edit_tiny_patch16_224', img_size=32, patch_size=4, depth=2, num_classes=10)
torch.save(m.state_dict(), W / 'good.pth')
m2 = timm.create_model('edit_tiny_patch16_224', img_size=32, patch_size=4, depth=3, num_classes=10)
torch.save(m2.state_dict(), W / 'depth3.pth')
m3 = timm.create_model('edit_tiny_patch16_224', img_size=32, patch_size=4, depth=2, num_classes=7)
torch.save(m3.state_dict(), W / 'head7.pth')
m4 = timm.create_model('edit_small_patch16_224', img_size=32, patch_size=4, depth=2, num_classes=10)
torch.save(m4.state_dict(), W / 'width.pth')
m5 = timm.create_model('deit3_small_patch16_224', img_size=32, patch_size=4, depth=2, num_classes=10)
torch.save(m5.state_dict(), W / 'deit3.pth')
sd = m.state_dict(); sd = {k: v.clone() for k, v in sd.items()}
for v in sd.values():
    if v.is_floating_point(): v.fill_(float('nan'))
torch.save(sd, W / 'nan.pth')
d = open(W / 'good.pth', 'rb').read(); open(W / 'trunc.pth', 'wb').write(d[:len(d) // 2])
open(W / 'empty.pth', 'wb').write(b'')
(W / 'dir.pth').mkdir()
open(W / 'random.pth', 'wb').write(os.urandom(5000))

pickle.dump(Evil(), open(W / 'evil.pth', 'wb'))
import torch.serialization
from safetensors.torch import save_file
save_file({k: v.half().contiguous() for k, v in m.state_dict().items()}, str(W / 'half.safetensors'))
save_file({k: v.contiguous() for k, v in m.state_dict().items()}, str(W / 'good.safetensors'))
save_file({k: (v * 0).to(torch.int32).contiguous() for k, v in m.state_dict().items()}, str(W / 'int.safetensors'))
torch.save([1, 2, 3], W / 'list.pth')
torch.save({'model': {'foo': torch.zeros(3)}}, W / 'foo.pth')
torch.save({'epoch': 3}, W / 'nomodel.pth')
torch.save(torch.zeros(3), W / 'tensor.pth')
# yaml configs
Y = R / 'y'; Y.mkdir()
(Y / 'notyaml.yaml').write_text('model: [unclosed\n  : :')
(Y / 'list.yaml').write_text('- a\n- b\n')
(Y / 'unknown.yaml').write_text('modle: x\n')
(Y / 'wrongtype.yaml').write_text('epochs: many\n')
(Y / 'huge.yaml').write_text('epochs: 1e400\n')
(Y / 'hugeint.yaml').write_text('batch_size: 100000000000000000000\n')
(Y / 'neg.yaml').write_text('lr: -1\n')
(Y / 'strnum.yaml').write_text('lr: "0.001"\n')
(Y / 'empty.yaml').write_text('')
(Y / 'scalar.yaml').write_text('42\n')
(Y / 'kwlist.yaml').write_text('model_kwargs: [1, 2]\n')
(Y / 'boolstr.yaml').write_text('ema: "yes please"\n')
(Y / 'binary.yaml').write_bytes(os.urandom(300))
(Y / 'nulls.yaml').write_text('epochs: null\nbatch_size: null\n')
(Y / 'tag.yaml').write_text('epochs: !!python/object/apply:os.system ["touch /tmp/sweep/PWNED2"]\n')
print('fixtures ok')
