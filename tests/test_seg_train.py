"""Segmenter training through the engine: learning on the synthetic set, exact resume, the command line."""
import json

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from editvit.cli import main
from editvit.segmentation import SegTrainConfig, train_segmentation
from editvit.segmentation import trainer as seg_trainer
from editvit.train import checkpoint as run_checkpoint

TINY = dict(patch_size=4, embed_dim=32, depth=2, num_heads=2)



def _config(output, **kwargs):
    args = dict(model='edit_tiny_patch16_224', model_kwargs=TINY, dataset='synthetic', num_classes=3,
                synthetic_samples=64, synthetic_image_size=32, crop_size=32, scale_long=128, scale_short=32,
                ratio_min=0.75, ratio_max=1.5, epochs=2, batch_size=8, lr=0.1, min_lr=1e-4, output=str(output),
                num_workers=0, progress=False, checkpoint_every=0, eval_batch_size=16, seed=3)
    return SegTrainConfig(**{**args, **kwargs})


def test_short_synthetic_training_reaches_miou_well_above_chance(tmp_path):
    # 3 classes, 120 updates of 8 images: always predicting the background scores about 25 mIoU
    metrics = train_segmentation(_config(tmp_path / 'run', synthetic_samples=320, epochs=3, photometric=False))
    assert metrics['updates'] == 120
    assert metrics['val_mIoU'] > 60
    assert min(metrics['per_class_iou'].values()) > 40  # every class is found, not only the background
    rows = (tmp_path / 'run' / 'summary.csv').read_text().splitlines()
    assert rows[0].startswith('epoch,train_loss,lr,val_mIoU,val_pixel_acc') and len(rows) == 4
    assert float(rows[-1].split(',')[1]) < float(rows[1].split(',')[1])  # the loss went down


def test_poly_learning_rate_decays_per_update_to_min_lr():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    sched = seg_trainer.create_poly_scheduler(opt, SegTrainConfig(), total_updates=100)
    sched.step_update(num_updates=50)
    assert opt.param_groups[0]['lr'] == pytest.approx(1e-5 + (1e-3 - 1e-5) * 0.5 ** 0.9)
    sched.step_update(num_updates=100)
    assert opt.param_groups[0]['lr'] == pytest.approx(1e-5)


def test_interrupted_run_resumes_to_identical_weights(tmp_path, monkeypatch):
    reference = tmp_path / 'reference'
    train_segmentation(_config(reference, synthetic_samples=48, checkpoint_every=2))  # 6 updates an epoch

    saves = {'n': 0}
    save = run_checkpoint.save_checkpoint

    def save_then_die(path, state):  # the run is killed just after its second checkpoint (update 4, mid epoch 0)
        save(path, state)
        saves['n'] += 1
        if saves['n'] == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(run_checkpoint, 'save_checkpoint', save_then_die)
    run = tmp_path / 'interrupted'
    with pytest.raises(KeyboardInterrupt):
        train_segmentation(_config(run, synthetic_samples=48, checkpoint_every=2))
    monkeypatch.setattr(run_checkpoint, 'save_checkpoint', save)
    assert torch.load(run / 'checkpoint-last.pth', weights_only=True)['updates'] == 4
    metrics = train_segmentation(_config(run, synthetic_samples=48, checkpoint_every=2, resume=True))
    a, b = load_file(reference / 'model.safetensors'), load_file(run / 'model.safetensors')
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert metrics['val_mIoU'] == json.loads((reference / 'metrics.json').read_text())['val_mIoU']


def test_command_line_train_then_eval_with_pictures(tmp_path, capsys):
    model = ['--model', 'deit3_small_patch16_224', '--model-kwargs', 'patch_size=8', 'embed_dim=32', 'depth=2',
             'num_heads=2', '--crop-size', '32', '--scale-long', '128', '--scale-short', '32', '--dataset',
             'synthetic', '--synthetic-samples', '32', '--num-workers', '0']
    run = tmp_path / 'run'
    assert main(['segment', 'train', *model, '--epochs', '1', '--lr', '0.05', '--output', str(run),
                 '--no-progress', '--decoder', 'linear']) == 0
    trained = json.loads((run / 'metrics.json').read_text())
    capsys.readouterr()
    assert main(['segment', 'eval', *model, '--decoder', 'linear', '--checkpoint', str(run / 'model.safetensors'),
                 '--output', str(tmp_path / 'eval'), '--pictures', '2', '--batch-size', '4']) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed['mIoU'] == pytest.approx(trained['val_mIoU'])  # the same weights on the same validation set
    assert set(printed['per_class_iou']) == {'background', 'object_1', 'object_2'}
    assert (tmp_path / 'eval' / 'per_class_iou.md').read_text().startswith('| class | IoU (%) |')
    picture = Image.open(tmp_path / 'eval' / 'pictures' / '0001.png')
    assert picture.size == (3 * 96 + 2 * 4, 96 + 12)  # 32x32 panels enlarged 3x


def test_command_line_errors_are_one_line(tmp_path, capsys):
    bad = tmp_path / 'bad.yaml'
    bad.write_text('crop_sise: 512\n')
    assert main(['segment', 'train', '--config', str(bad), '--model', 'edit_tiny_patch16_224', '--dataset',
                 'synthetic', '--output', str(tmp_path / 'x')]) == 2
    err = capsys.readouterr().err
    assert "unknown key 'crop_sise'" in err and 'crop_size' in err
    assert main(['segment', 'eval', '--model', 'edit_tiny_patch16_224', '--dataset', 'ade20k', '--checkpoint',
                 str(tmp_path / 'none.safetensors'), '--data-dir', str(tmp_path)]) == 2
    assert 'not an ADE20K release' in capsys.readouterr().err


def test_eval_on_ade20k_layout_with_images_of_different_sizes_multi_scale(tmp_path, capsys):
    from editvit.segmentation import create_segmenter
    from editvit.weights import save_model
    base = tmp_path / 'ADEChallengeData2016'
    for name, (h, w) in (('a', (40, 60)), ('b', (50, 30))):
        for kind, folder in (('images', 'validation'), ('annotations', 'validation')):
            (base / kind / folder).mkdir(parents=True, exist_ok=True)
        Image.new('RGB', (w, h), (120, 80, 40)).save(base / 'images' / 'validation' / f'{name}.jpg')
        Image.new('L', (w, h), 3).save(base / 'annotations' / 'validation' / f'{name}.png')  # class 2 everywhere
    kwargs = dict(patch_size=8, embed_dim=32, depth=2, num_heads=2)
    save_model(create_segmenter('edit_tiny_patch16_224', 150, 32, backbone_kwargs=kwargs), tmp_path / 'seg.safetensors')
    assert main(['segment', 'eval', '--model', 'edit_tiny_patch16_224', '--model-kwargs', *[f'{k}={v}' for k, v in
                 kwargs.items()], '--checkpoint', str(tmp_path / 'seg.safetensors'), '--dataset', 'ade20k',
                 '--data-dir', str(tmp_path), '--crop-size', '32', '--scale-long', '128', '--scale-short', '32',
                 '--eval-stride', '16', '--multi-scale', '--num-workers', '0']) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics['images'] == 2 and metrics['multi_scale'] and metrics['flip']
    assert len(metrics['per_class_iou']) == 150
    assert metrics['pixel_acc'] == pytest.approx(metrics['per_class_iou']['floor'])  # class 2 is all the labels
