"""Bad inputs found by going through every command's inputs (docs/bad_inputs.md lists them all): each is refused
where it is parsed or loaded, as one line naming the input and the fix, exit code 2, no traceback."""
import errno
import gzip
import math
import struct

import numpy as np
import pytest
import timm
import torch
from PIL import Image

from editvit.cli import main, os_error_message
from editvit.data import create_dataset
from editvit.errors import CheckpointError, ConfigError, DataError
from editvit.models.factory import create_model
from editvit.search import PSViTSearchSpace
from editvit.segmentation import SegTrainConfig
from editvit.segmentation.folder import mask_folder
from editvit.segmentation.segmenter import create_segmenter
from editvit.train import TrainConfig, from_dict
from editvit.train.config import read_yaml
from editvit.train.model_setup import load_finetune_weights
from editvit.weights import load_model_weights

TINY = ['--model', 'edit_tiny_patch16_224', '--model-kwargs', 'img_size=16', 'patch_size=4', 'embed_dim=32', 'depth=2',
        'num_heads=2']
CPU = ['--device', 'cpu', '--num-workers', '0', '--threads', '1', '--no-progress']
SYNTHETIC = ['--dataset', 'synthetic', '--num-classes', '10', '--synthetic-samples', '16']


def tiny(**kwargs):
    kwargs = dict(dict(img_size=16, patch_size=4, embed_dim=32, depth=2, num_heads=2), **kwargs)
    return create_model('edit_tiny_patch16_224', 10, kwargs)


def one_error_line(capsys, command: str) -> str:
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and err.startswith(f'editvit {command}: error: '), err
    assert 'Traceback' not in err
    return err


def images(folder, n=2, size=(8, 8)):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(np.full((size[1], size[0], 3), 40 * i, np.uint8)).save(folder / f'{i}.png')


# data folders and files

def test_a_class_folder_without_images_is_named(tmp_path):
    images(tmp_path / 'train' / 'cat')
    (tmp_path / 'train' / 'dog').mkdir()
    with pytest.raises(DataError, match="'dog' of .* hold no images"):
        create_dataset('imagefolder', str(tmp_path), 'train')


def test_train_and_val_classes_that_differ_are_named(tmp_path):
    for split, names in (('train', ('cat', 'dog')), ('val', ('cat', 'cow'))):
        for name in names:
            images(tmp_path / split / name)
    with pytest.raises(DataError, match='only in val: cow; only in train: dog'):
        create_dataset('imagefolder', str(tmp_path), 'val')


def _idx(path, array, cut=0):
    data = bytes([0, 0, 8, array.ndim]) + b''.join(struct.pack('>I', s) for s in array.shape)
    data += array.astype(np.uint8).tobytes()
    with gzip.open(path, 'wb') as f:
        f.write(data[:len(data) - cut] if cut else data)


def _fashion(root, n=4, labels=None):
    root.mkdir(exist_ok=True)
    for split in ('train', 't10k'):
        _idx(root / f'{split}-images-idx3-ubyte.gz', np.zeros((n, 28, 28)))
        _idx(root / f'{split}-labels-idx1-ubyte.gz', np.arange(n) % 10 if labels is None else labels)


@pytest.mark.parametrize('labels, words', [(np.array([0, 1, 2, 200]), 'holds label 200'),
                                           (np.zeros((4, 2)), 'do not form an image set')])
def test_fashion_mnist_labels_that_do_not_fit_are_refused(tmp_path, labels, words):
    _fashion(tmp_path, labels=labels)
    with pytest.raises(DataError, match=words):
        create_dataset('fashion-mnist', str(tmp_path), 'train')


def test_a_cut_gzip_file_is_a_data_error(tmp_path):
    _fashion(tmp_path)
    path = tmp_path / 'train-images-idx3-ubyte.gz'
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(DataError, match='cannot read idx file'):
        create_dataset('fashion-mnist', str(tmp_path), 'train')


@pytest.mark.parametrize('name', ['synthetic', 'fashion-mnist', 'cifar10'])
def test_a_split_carved_from_a_data_set_with_its_own_is_refused(tmp_path, name):
    _fashion(tmp_path)
    (tmp_path / 'cifar-10-batches-py').mkdir()  # torchvision's format: its own test split
    for split in ('train', 'val'):
        with pytest.raises(ConfigError, match=f'{name}.* has its own validation split; --val-split-per-class 5 '
                                              f'carves one from class folders only: drop the option'):
            create_dataset(name, str(tmp_path), split, val_split_per_class=5)


@pytest.mark.parametrize('command', ['train', 'eval'])
def test_train_and_eval_refuse_a_carved_split_of_fashion_mnist_alike(tmp_path, capsys, command):
    _fashion(tmp_path)
    weights = tmp_path / 'w.pth'
    torch.save(tiny().state_dict(), weights)
    options = ['--checkpoint', str(weights)] if command == 'eval' else ['--output', str(tmp_path / 'run')]
    cpu = CPU if command == 'train' else CPU[:-1]  # eval has no progress bar
    code = main([command, *TINY, *cpu, '--dataset', 'fashion-mnist', '--data-dir', str(tmp_path), '--num-classes',
                 '10', '--val-split-per-class', '2', *options])
    assert code == 2 and 'fashion-mnist has its own validation split' in one_error_line(capsys, command)


def test_a_synthetic_set_with_more_classes_than_images_is_refused_at_once(tmp_path, capsys):
    code = main(['train', *TINY, *CPU, '--dataset', 'synthetic', '--num-classes', '100000', '--synthetic-samples', '16',
                 '--output', str(tmp_path / 'run')])  # was 35 s to the first update and a 100,000-image evaluation
    assert code == 2 and ('the synthetic set of 100000 classes has 16 training images, fewer than one a class: raise '
                          '--synthetic-samples or lower --num-classes') in one_error_line(capsys, 'train')


def test_an_empty_split_is_refused_before_training(tmp_path, capsys):
    _fashion(tmp_path, n=0)
    code = main(['train', *TINY, *CPU, '--dataset', 'fashion-mnist', '--data-dir', str(tmp_path),
                 '--output', str(tmp_path / 'run')])
    err = one_error_line(capsys, 'train')
    assert code == 2 and 'the train split of dataset' in err and 'holds no images' in err


def test_a_batch_larger_than_the_data_is_one_line(tmp_path, capsys):
    code = main(['train', *TINY, *CPU, *SYNTHETIC, '--batch-size', '64', '--output', str(tmp_path / 'run')])
    assert code == 2 and 'the training set has 16 images: too few' in one_error_line(capsys, 'train')


def test_a_damaged_cifar_copy_does_not_suggest_downloading(tmp_path):
    (tmp_path / 'cifar-10-batches-py').mkdir()
    with pytest.raises(DataError) as error:
        create_dataset('cifar10', str(tmp_path), 'train')
    assert 'download' not in str(error.value) and 'not a complete cifar10 copy' in str(error.value)


# options and configs

@pytest.mark.parametrize('key, value, words', [
    ('seed', -1, "'seed' (--seed) must be >= 0 and <= 4294967295, got -1"),
    ('seed', 2**70, "'seed' (--seed) must be >= 0"),
    ('lr', math.inf, "'lr' (--lr) must be a finite number > 0, got inf"),
    ('output', '', "'output' (--output) is empty"),
    ('momentum', 2.0, "'momentum' (--momentum) must be >= 0 and < 1, got 2.0"),
])
def test_values_refused_where_the_config_is_parsed(key, value, words):
    with pytest.raises(ConfigError, match=words.replace('(', r'\(').replace(')', r'\)')):
        from_dict(SegTrainConfig if key == 'momentum' else TrainConfig, {key: value})


def test_an_empty_option_is_refused_not_read_as_the_current_folder(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(['train', *TINY, *CPU, *SYNTHETIC, '--output', '']) == 2
    assert '--output is empty' in one_error_line(capsys, 'train')
    assert list(tmp_path.iterdir()) == []


def test_resume_with_overwrite_is_named_at_once(tmp_path, capsys):
    assert main(['train', *TINY, *CPU, *SYNTHETIC, '--output', str(tmp_path / 'new'), '--resume', '--overwrite']) == 2
    assert 'pass one of them' in one_error_line(capsys, 'train')


@pytest.mark.parametrize('content, words', [(b'\xff\xfe\x00binary', 'is not a text file'), (None, 'is a folder')])
def test_a_config_that_is_not_a_yaml_text_file(tmp_path, content, words):
    path = tmp_path / 'c.yaml'
    path.mkdir() if content is None else path.write_bytes(content)
    with pytest.raises(ConfigError, match=words):
        read_yaml(path)


@pytest.mark.parametrize('kwargs, words', [
    (dict(patch_size=0), 'patch_size=0 is out of range: it must be an integer >= 1'),
    (dict(num_heads=5), 'num_heads=5 does not divide embed_dim=32'),
    (dict(embed_dim=-8), 'embed_dim=-8 is out of range: it must be an integer >= 1'),
    (dict(num_classes=3), 'contradicts'),
    (dict(depth=0), 'depth=0 is out of range: it must be an integer >= 1'),
    (dict(num_heads=0), 'num_heads=0 is out of range: it must be an integer >= 1'),
    (dict(decoder_heads=3), 'decoder_heads=3 does not divide embed_dim=32'),
    (dict(patch_size=32), r'patch_size=32 is out of range: it must be between 1 and the image size img_size=16'),
    (dict(mlp_ratio=0.), 'mlp_ratio=0.0 is out of range'),
    (dict(depth=1.5), 'depth=1.5 is out of range')])
def test_model_kwargs_the_layers_reject_are_a_config_error(kwargs, words):
    with pytest.raises(ConfigError, match=words):
        tiny(**kwargs)


@pytest.mark.parametrize('name, kwargs, words', [
    ('edit_tiny_cb_patch16_224', dict(depth=0), 'depth=0 is out of range'),
    ('edit_tiny_ps_patch16_224', dict(embed_dim=100), 'num_heads=3 does not divide embed_dim=100'),
    ('deit3_small_cb_patch16_224', dict(depth=0), 'depth=0 is out of range'),
    ('deit3_small_cb_patch16_224', dict(img_size=8), 'patch_size=16 is out of range'),
    ('psvit_2d_tiny', dict(num_heads=0), 'num_heads=0 is out of range')])
def test_degenerate_sizes_are_refused_by_every_model_constructor(name, kwargs, words):
    with pytest.raises(ConfigError, match=words):
        timm.create_model(name, **kwargs)  # the library API, as the commands
    with pytest.raises(ConfigError, match=words):
        create_model(name, 10, kwargs)


def test_a_model_without_blocks_is_one_line(tmp_path, capsys):
    code = main(['train', *TINY, 'depth=0', *CPU, *SYNTHETIC, '--output', str(tmp_path / 'r')])
    assert code == 2 and 'model kwarg depth=0 is out of range: it must be an integer >= 1' in one_error_line(
        capsys, 'train')
    assert not (tmp_path / 'r' / 'model.safetensors').exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason='needs a machine without a GPU')
def test_cuda_without_a_gpu_is_one_line(tmp_path, capsys):
    assert main(['train', *TINY, *CPU[2:], '--device', 'cuda', *SYNTHETIC, '--output', str(tmp_path / 'r')]) == 2
    assert 'torch sees no CUDA GPU; use --device cpu' in one_error_line(capsys, 'train')


# weights

def test_weights_of_another_width_that_cannot_be_converted(tmp_path):
    deit3 = timm.create_model('deit3_small_patch16_224', img_size=16, patch_size=4, depth=2, num_classes=10)
    torch.save(deit3.state_dict(), tmp_path / 'deit3.pth')
    with pytest.raises(CheckpointError, match='deit3.pth cannot be converted to EditVisionTransformer'):
        load_model_weights(tiny(), tmp_path / 'deit3.pth')


@pytest.mark.parametrize('damage, words', [('nan', 'NaN or infinite'), ('int', 'torch.int32 values')])
@pytest.mark.parametrize('load', [load_model_weights, load_finetune_weights])
def test_weights_that_would_load_but_be_wrong_are_refused(tmp_path, damage, words, load):
    state = {k: v.clone() for k, v in tiny().state_dict().items()}
    if damage == 'nan':
        state['pos_embed'].fill_(float('nan'))
    else:
        state['pos_embed'] = state['pos_embed'].to(torch.int32)
    torch.save(state, tmp_path / 'w.pth')
    with pytest.raises(CheckpointError, match=words):
        load(tiny(), tmp_path / 'w.pth')


def test_pretrained_backbone_errors_name_the_file(tmp_path):
    torch.save(tiny(embed_dim=64).state_dict(), tmp_path / 'wide.pth')
    with pytest.raises(CheckpointError, match='wide.pth does not fit'):
        create_segmenter('edit_tiny_patch16_224', 2, 16, backbone_kwargs=dict(patch_size=4, embed_dim=32, depth=2,
                                                                            num_heads=2),
                         backbone_weights=tmp_path / 'wide.pth')


# run folders and outputs

def test_resume_of_a_finished_run_whose_checkpoint_was_deleted(tmp_path, capsys):
    out = tmp_path / 'run'
    assert main(['train', *TINY, *CPU, *SYNTHETIC, '--batch-size', '8', '--epochs', '1', '--output', str(out)]) == 0
    (out / 'checkpoint-last.pth').unlink()
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    capsys.readouterr()
    assert main(['train', '--resume', '--output', str(out), *CPU]) == 0
    assert 'is finished' in capsys.readouterr().out
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before


@pytest.mark.parametrize('where, words', [('folder', 'is a folder; give a file name'), ('under_file', 'a file;')])
def test_eval_output_that_cannot_be_written_is_named_before_the_work(tmp_path, capsys, where, words):
    (tmp_path / 'file').write_text('x')
    output = tmp_path if where == 'folder' else tmp_path / 'file' / 'm.json'
    code = main(['eval', *TINY, *CPU[:-1], *SYNTHETIC, '--checkpoint', str(tmp_path / 'none.pth'),
                 '--output', str(output)])
    assert code == 2 and words in one_error_line(capsys, 'eval')


def test_segment_eval_output_that_is_a_file(tmp_path, capsys):
    (tmp_path / 'file').write_text('x')
    code = main(['segment', 'eval', *TINY, *CPU[:-1], '--dataset', 'synthetic', '--checkpoint', 'none.pth',
                 '--output', str(tmp_path / 'file')])
    assert code == 2 and 'is a file, not a folder' in one_error_line(capsys, 'segment eval')


@pytest.mark.parametrize('options, words', [
    (['--high-norm-threshold', 'nan'], '--high-norm-threshold must be a finite norm above 0'),
    (['--threads', '0'], '--threads must be at least 1'),
    (['--output-is-a-file'], 'is a file, not a folder'),
])
def test_analyze_options_checked_before_the_model_is_built(tmp_path, capsys, options, words):
    (tmp_path / 'file').write_text('x')
    output = tmp_path / ('file' if options == ['--output-is-a-file'] else 'out')
    options = [] if options == ['--output-is-a-file'] else options
    code = main(['analyze', '--model', 'edit_tiny_patch16_224', '--output', str(output), *options])
    assert code == 2 and words in one_error_line(capsys, 'analyze')


def test_an_images_folder_is_read_with_its_subfolders_as_imagefolder_reads_one(tmp_path, capsys):
    from editvit.analysis.images import find_image_files
    root = tmp_path / 'photos'
    images(root / 'n02123045', n=2)  # 0.png, 1.png
    images(root / 'b' / 'deeper', n=1)
    images(root, n=1)
    (root / 'b' / 'notes.txt').write_text('not an image')
    (root / 'b' / 'UPPER.PNG').write_bytes((root / '0.png').read_bytes())
    (root / 'b' / 'loop').symlink_to('..')  # a link to a parent folder: not followed
    assert [p.relative_to(root).as_posix() for p in find_image_files([root])] == [
        '0.png', 'b/UPPER.PNG', 'b/deeper/0.png', 'n02123045/0.png', 'n02123045/1.png']
    (root / 'b' / 'deeper' / '0.png').unlink()
    assert main(['analyze', '--model', 'edit_tiny_patch16_224', '--model-kwargs', 'img_size=16', 'patch_size=4',
                 'embed_dim=32', 'depth=2', 'num_heads=2', '--images', str(root / 'b'), '--no-plots', '--threads', '1',
                 '--output', str(tmp_path / 'out')]) == 0
    assert '; 1 images' in capsys.readouterr().out  # UPPER.PNG
    with pytest.raises(FileNotFoundError, match="no image files .* in folder '.*deeper' or its subfolders"):
        find_image_files([root / 'b' / 'deeper'])


def test_os_error_for_a_path_that_exists_as_a_file():
    message = os_error_message(FileExistsError(errno.EEXIST, 'File exists', '/out/x'))
    assert "'/out/x' already exists" in message and 'choose another path' in message


# segmentation classes

@pytest.mark.parametrize('names, words', [('', 'names no classes'), ('sky\nsky\n', "names 'sky' more than once")])
def test_class_names_file_that_is_empty_or_repeats_a_name(tmp_path, names, words):
    (tmp_path / 'classes.txt').write_text(names)
    with pytest.raises(DataError, match=words):
        mask_folder(str(tmp_path), 'train')


def _mask_folder(root, labels):
    """The generic layout, train and val, one 16x16 image per mask of `labels` (a list of fills)."""
    root.mkdir()
    (root / 'classes.txt').write_text('sky\nsea\n')
    for split in ('train', 'val'):
        for kind in ('images', 'masks'):
            (root / kind / split).mkdir(parents=True)
        for i, fill in enumerate(labels):
            Image.new('RGB', (16, 16), (40 * i, 90, 20)).save(root / 'images' / split / f'{i}.png')
            Image.new('L', (16, 16), fill).save(root / 'masks' / split / f'{i}.png')


def test_masks_without_a_labelled_pixel_are_refused_before_training(tmp_path, capsys):
    _mask_folder(tmp_path / 'data', [255, 255, 255])
    assert main(['segment', 'train', *TINY, *CPU, '--dataset', 'maskfolder', '--data-dir', str(tmp_path / 'data'),
                 '--crop-size', '16', '--scale-long', '32', '--scale-short', '16', '--batch-size', '2',
                 '--output', str(tmp_path / 'run')]) == 2
    err = one_error_line(capsys, 'segment train')
    assert f"no mask in '{tmp_path / 'data' / 'masks' / 'train'}' labels a pixel" in err and 'ignored (255)' in err
    assert not (tmp_path / 'run' / 'checkpoint-last.pth').exists()
    _mask_folder(tmp_path / 'one', [255, 255, 1])  # one labelled mask is enough
    mask_folder(str(tmp_path / 'one'), 'train').check_labelled()


def test_a_batch_without_a_labelled_pixel_has_loss_0_and_finite_gradients():
    from editvit.segmentation.loss import SegmentationCrossEntropy
    logits = torch.randn(2, 3, 4, 4, requires_grad=True)
    loss = SegmentationCrossEntropy()(logits, torch.full((2, 4, 4), 255))
    loss.backward()
    assert loss.item() == 0 and torch.equal(logits.grad, torch.zeros_like(logits))
    labels = torch.full((2, 4, 4), 255)
    labels[0, 0, 0] = 1  # one labelled pixel: its cross-entropy alone
    expected = torch.nn.functional.cross_entropy(logits[:1, :, 0, 0], torch.tensor([1]))
    assert SegmentationCrossEntropy()(logits, labels).item() == pytest.approx(expected.item())


# search and demo

@pytest.mark.parametrize('kwargs, words', [(dict(patch_size=0), 'patch_size must be at least 1'),
                                           (dict(num_classes=0), 'num_classes must be at least 1'),
                                           (dict(token_choices=((0,), (9,), (4,))), 'at least 1'),
                                           (dict(embed_dim=64, num_heads=3), 'num_heads 3 does not divide embed_dim 64')])
def test_search_space_values_out_of_range(kwargs, words):
    with pytest.raises(ValueError, match=words):
        PSViTSearchSpace(**kwargs)


@pytest.mark.parametrize('options, words', [(['--budget-mmacs', 'nan'], '--budget-mmacs must be a finite'),
                                            (['--budget-mmacs', '-5'], '--budget-mmacs must be a finite'),
                                            (['--seed', '-1'], "'seed' (--seed) must be >= 0")])
def test_search_options_out_of_range_are_one_line(tmp_path, capsys, options, words):
    code = main(['search', '--dataset', 'synthetic', '--output', str(tmp_path / 's.json'), *options])
    assert code == 2 and words in one_error_line(capsys, 'search')


@pytest.mark.parametrize('options, words', [(['--epochs', '0'], '--epochs must be at least 1'),
                                            (['--train-per-class', '-3'], '--train-per-class must be at least 1'),
                                            (['--threads', '0'], '--threads must be at least 1')])
def test_demo_options_are_checked_before_the_data_is_looked_for(tmp_path, capsys, options, words):
    code = main(['demo', '--data-dir', str(tmp_path / 'none'), '--output', str(tmp_path / 'demo'), *options])
    assert code == 2 and words in one_error_line(capsys, 'demo')


def test_an_empty_model_pattern_is_refused(capsys):
    assert main(['models', '']) == 2
    assert 'the model pattern is empty' in one_error_line(capsys, 'models')


def test_ctrl_c_while_the_command_loads_is_one_line(monkeypatch, capsys):
    import editvit.cli as cli

    def interrupted():
        raise KeyboardInterrupt
    monkeypatch.setattr(cli, 'build_parser', interrupted)
    assert main(['models']) == 130
    assert capsys.readouterr().err == 'editvit: interrupted\n'


def test_a_model_kwarg_of_the_wrong_kind_is_refused():
    with pytest.raises(ConfigError, match="qkv_bias='maybe' of edit_tiny_patch16_224 must be True or False"):
        tiny(qkv_bias='maybe')
    with pytest.raises(ConfigError, match="mlp_ratio='four' of edit_tiny_patch16_224 must be a number"):
        tiny(mlp_ratio='four')


def _fake_run(folder, **config):
    import yaml
    folder.mkdir()
    (folder / 'config.yaml').write_text(yaml.safe_dump(dict(dict(model='edit_tiny_patch16_224'), **config)))
    (folder / 'model.safetensors').write_bytes(b'')
    return str(folder)


@pytest.mark.parametrize('command, kind, words', [
    (['eval', '--run'], 'segmentation', 'holds a segmentation run'),
    (['train', '--resume', '--output'], 'segmentation', 'holds a segmentation run'),
    (['analyze', '--output', 'OUT', '--run'], 'segmentation', 'holds a segmentation run'),
    (['segment', 'eval', '--run'], 'classification', 'holds a classification run'),
    (['segment', 'train', '--resume', '--output'], 'classification', 'holds a classification run'),
])
def test_a_run_of_the_other_task_is_named(tmp_path, capsys, command, kind, words):
    run = _fake_run(tmp_path / 'run', **(dict(decoder='linear') if kind == 'segmentation' else dict(ema=False)))
    command = [str(tmp_path / 'out') if c == 'OUT' else c for c in command]
    assert main([*command, run]) == 2
    assert words in one_error_line(capsys, ' '.join(command[:2] if command[0] == 'segment' else command[:1]))


def test_an_image_size_the_patches_do_not_tile_is_a_warning(capsys):
    tiny(img_size=18)
    assert 'warning: edit_tiny_patch16_224: img_size (18, 18) is not a multiple of patch_size (4, 4); the last (2, ' \
           '2) pixels' in capsys.readouterr().err
