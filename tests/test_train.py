"""Training, evaluation and fine-tuning end to end on tiny models and the synthetic set, through the library API
and the command line, and the clear errors for bad input."""
import json
import pickle
from pathlib import Path

import pytest
import timm
import torch
import yaml
from safetensors.torch import load_file

from editvit.cli import main
from editvit.train import ConfigError, NonFiniteLossError, TrainConfig, load_finetune_weights, train
from editvit.train.checkpoint import LAST, load_checkpoint
from editvit.weights import CheckpointError

TINY = dict(img_size=16, patch_size=4, embed_dim=32, depth=2, num_heads=2)
TINY_ARGS = ['--model-kwargs'] + [f'{k}={v}' for k, v in TINY.items()]


def tiny_config(output: Path, **kwargs) -> TrainConfig:
    args = dict(model='edit_tiny_patch16_224', model_kwargs=dict(TINY), dataset='synthetic', num_classes=4,
                synthetic_samples=128, output=str(output), epochs=3, batch_size=16, lr=5e-3, warmup_epochs=0,
                weight_decay=0.0,
                mixup=0.0, cutmix=0.0, crop='src', three_augment=False, color_jitter=0.0, num_workers=0,
                progress=False)
    return TrainConfig(**{**args, **kwargs})


@pytest.fixture(scope='module')
def trained(tmp_path_factory) -> Path:
    """A finished 3-epoch run of a tiny EDIT, with EMA and TensorBoard."""
    out = tmp_path_factory.mktemp('run')
    train(tiny_config(out, ema=True, ema_decay=0.5, tensorboard=True))
    return out


def test_training_lowers_the_loss_and_writes_the_run(trained):
    rows = (trained / 'summary.csv').read_text().splitlines()
    header = rows[0].split(',')
    assert header[:6] == ['epoch', 'train_loss', 'lr', 'val_loss', 'val_top1', 'val_top5']
    losses = [float(r.split(',')[1]) for r in rows[1:]]
    assert len(losses) == 3 and losses[-1] < 0.8 * losses[0]
    metrics = json.loads((trained / 'metrics.json').read_text())
    assert metrics['val_top1'] > 50  # 4 classes: chance is 25
    assert metrics['updates'] == 3 * 128 // 16 and metrics['train_loss'] == losses[-1]
    assert 'ema_val_top1' in metrics and (trained / 'model_ema.safetensors').is_file()
    assert yaml.safe_load((trained / 'config.yaml').read_text())['model_kwargs'] == TINY
    assert list((trained / 'tensorboard').glob('events.out.tfevents.*'))
    assert 'epoch 2 | train_loss' in (trained / 'log.txt').read_text()


def test_final_weights_load_with_timm(trained):
    model = timm.create_model('edit_tiny_patch16_224', pretrained=True, num_classes=4, **TINY,
                              pretrained_cfg_overlay=dict(file=str(trained / 'model.safetensors'), num_classes=4))
    saved = load_checkpoint(trained / LAST)['model']
    assert all(torch.equal(v, saved[k]) for k, v in model.state_dict().items())


def test_eval_command_prints_json_metrics(trained, capsys):
    code = main(['eval', '--model', 'edit_tiny_patch16_224', *TINY_ARGS, '--checkpoint',
                 str(trained / 'model.safetensors'), '--dataset', 'synthetic', '--num-classes', '4',
                 '--synthetic-samples', '128', '--num-workers', '0'])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    metrics = json.loads((trained / 'metrics.json').read_text())
    assert result['images'] == 32 and result['top1'] == pytest.approx(metrics['val_top1'], abs=1e-3)
    assert result['loss'] == pytest.approx(metrics['val_loss'], abs=1e-5)
    assert result['top5'] == 100.0 and result['images_per_sec'] > 0
    # an editvit training checkpoint is accepted as weights too
    assert main(['eval', '--model', 'edit_tiny_patch16_224', *TINY_ARGS, '--checkpoint', str(trained / LAST),
                 '--dataset', 'synthetic', '--num-classes', '4', '--synthetic-samples', '128',
                 '--num-workers', '0']) == 0
    assert json.loads(capsys.readouterr().out)['top1'] == result['top1']


def test_resume_refuses_a_changed_run_and_existing_output(trained, capsys):
    with pytest.raises(ConfigError, match=r"differs in:\n  epochs: 3 -> 2\n  model: 'edit_tiny_patch16_224' -> "
                                          r"'deit3_small_patch16_224'"):  # epochs may grow, not shrink
        train(tiny_config(trained, resume=True, epochs=2, model='deit3_small_patch16_224', ema=True, ema_decay=0.5,
                          tensorboard=False))
    with pytest.raises(ConfigError, match=r'already holds a run \(.*checkpoint-last.pth.*\); pass --resume'):
        train(tiny_config(trained, ema=True, ema_decay=0.5))
    assert main(['train', '--output', str(trained / 'none'), '--resume']) == 2
    assert "nothing to resume in" in capsys.readouterr().err
    # resuming a finished run changes nothing
    before = load_file(trained / 'model.safetensors')
    assert main(['train', '--output', str(trained), '--resume']) == 0
    after = load_file(trained / 'model.safetensors')
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    calls = {'n': 0}

    class PoisonedLoss(torch.nn.CrossEntropyLoss):
        def forward(self, output, target):
            calls['n'] += 1
            loss = super().forward(output, target)
            return loss * float('nan') if calls['n'] == 5 else loss

    monkeypatch.setattr('editvit.train.trainer.create_loss', lambda cfg, mixup_active: PoisonedLoss())
    with pytest.raises(NonFiniteLossError, match=r'loss is not finite \(nan\) at epoch 0, step 4 of the epoch '
                                                 r'\(update 5 of the run\)'):
        train(tiny_config(tmp_path, checkpoint_every=2))
    state = load_checkpoint(tmp_path / LAST)
    assert state['updates'] == 4
    assert all(torch.isfinite(v).all() for v in state['model'].values())
    assert not (tmp_path / 'model.safetensors').exists()


def test_finetune_resets_the_head_and_resamples_the_position_embedding(trained):
    model = timm.create_model('edit_tiny_patch16_224', num_classes=7, **dict(TINY, img_size=32))
    fresh_head = model.head.weight.clone()
    load_finetune_weights(model, trained / 'model.safetensors')
    source = load_file(trained / 'model.safetensors')
    assert model.pos_embed.shape == (1, 64, 32) and source['pos_embed'].shape == (1, 16, 32)  # 4x4 -> 8x8 grid
    assert torch.equal(model.blocks[1].mlp.fc2.weight, source['blocks.1.mlp.fc2.weight'])
    own = model.state_dict()
    decoder_keys = [k for k in source if k.startswith('decoder.')]
    assert decoder_keys and all(torch.equal(own[k], source[k]) for k in decoder_keys)  # EDIT -> EDIT keeps it
    assert model.head.weight.shape == (7, 32) and torch.equal(model.head.weight, fresh_head)


def test_finetune_edit_from_a_deit3_checkpoint_with_the_train_command(tmp_path):
    deit3 = timm.create_model('deit3_small_patch16_224', num_classes=1000, **TINY)
    torch.save({'model': deit3.state_dict()}, tmp_path / 'deit3.pth')  # DeiT's own checkpoint layout
    out = tmp_path / 'ft'
    assert main(['train', '--model', 'edit_tiny_patch16_224', *TINY_ARGS, 'img_size=32', '--dataset', 'synthetic',
                 '--num-classes', '3', '--synthetic-samples', '32', '--epochs', '1', '--batch-size', '16',
                 '--lr', '1e-4', '--num-workers', '0', '--no-progress', '--finetune', str(tmp_path / 'deit3.pth'),
                 '--output', str(out)]) == 0
    weights = load_file(out / 'model.safetensors')
    assert weights['head.weight'].shape == (3, 32) and weights['pos_embed'].shape == (1, 64, 32)
    # two small updates at lr 1e-4 keep the DeiT3 trunk close to where it started
    assert torch.allclose(weights['blocks.0.attn.qkv.weight'], deit3.blocks[0].attn.qkv.weight, atol=5e-3)


def test_a_companion_timm_model_trains_the_same_way(tmp_path):
    metrics = train(tiny_config(tmp_path, model='deit3_small_patch16_224', epochs=1, synthetic_samples=32))
    assert metrics['model'] == 'deit3_small_patch16_224' and metrics['updates'] == 2
    assert 'pos_embed' in load_file(tmp_path / 'model.safetensors')


class Payload:
    def __reduce__(self):
        return (print, ('this would run',))


def test_bad_checkpoints_are_clear_errors(trained, tmp_path, capsys):
    evil = tmp_path / 'evil.pth'
    with open(evil, 'wb') as f:
        pickle.dump({'model': Payload()}, f, protocol=2)
    (tmp_path / 'text.pth').write_text('hello')
    base = ['eval', '--model', 'edit_tiny_patch16_224', *TINY_ARGS, '--dataset', 'synthetic', '--num-classes', '4',
            '--num-workers', '0', '--checkpoint']
    assert main(base + [str(evil)]) == 2
    assert 'refusing to load' in capsys.readouterr().err
    assert main(base + [str(tmp_path / 'text.pth')]) == 2
    assert 'is not a PyTorch checkpoint' in capsys.readouterr().err
    assert main(base + [str(tmp_path / 'missing.pth')]) == 2
    assert 'does not exist' in capsys.readouterr().err
    wrong = ['eval', '--model', 'edit_tiny_patch16_224', '--model-kwargs', 'img_size=16', 'patch_size=4',
             'embed_dim=32', 'depth=3', 'num_heads=2', '--dataset', 'synthetic', '--num-classes', '4',
             '--checkpoint', str(trained / 'model.safetensors')]
    assert main(wrong) == 2
    err = capsys.readouterr().err
    assert 'does not fit EditVisionTransformer' in err and 'missing keys' in err and 'blocks.2.' in err
    with pytest.raises(CheckpointError, match='is not an editvit training checkpoint'):
        load_checkpoint(trained / 'model.safetensors')
    assert main(['train', '--model', 'edit_tiny_patch16_224', *TINY_ARGS, '--dataset', 'synthetic', '--output',
                 str(tmp_path / 'x'), '--finetune', str(evil)]) == 2
    assert 'refusing to load' in capsys.readouterr().err


def test_missing_data_directory_is_a_clear_error(tmp_path, capsys):
    assert main(['train', '--model', 'edit_tiny_patch16_224', '--dataset', 'cifar10', '--data-dir',
                 str(tmp_path / 'cifar'), '--output', str(tmp_path / 'o')]) == 2
    err = capsys.readouterr().err
    assert "data directory '" in err and "cifar' for 'cifar10' does not exist; expected ROOT/train/<class>" in err
    assert 'Traceback' not in err


def test_gradient_checkpointing_and_bf16_autocast(tmp_path):
    def run(name, **kwargs):
        train(tiny_config(tmp_path / name, epochs=1, synthetic_samples=64, **kwargs))
        return load_file(tmp_path / name / 'model.safetensors')

    plain, recomputed = run('plain'), run('recomputed', grad_checkpointing=True)
    assert all(torch.allclose(plain[k], recomputed[k], atol=1e-6) for k in plain)  # same training, less memory
    bf16 = run('bf16', amp='bf16')
    assert all(torch.isfinite(v).all() for v in bf16.values())
    assert not torch.equal(bf16['head.weight'], plain['head.weight'])  # the autocast really ran in bf16


def test_undecodable_training_image_stops_with_its_name_or_is_skipped_and_counted(tmp_path, capsys):
    import numpy as np
    from PIL import Image

    for split in ('train', 'val'):
        for c in ('a', 'b'):
            (tmp_path / 'data' / split / c).mkdir(parents=True)
            for i in range(8):
                pixels = np.full((16, 16, 3), 40 if c == 'a' else 200, dtype=np.uint8)
                Image.fromarray(pixels).save(tmp_path / 'data' / split / c / f'{i}.png')
    (tmp_path / 'data' / 'train' / 'b' / '3.png').write_bytes(b'\x89PNG broken')
    args = ['train', '--model', 'edit_tiny_patch16_224', *TINY_ARGS, '--dataset', 'imagefolder', '--data-dir',
            str(tmp_path / 'data'), '--epochs', '1', '--batch-size', '4', '--num-workers', '0', '--no-progress']
    assert main(args + ['--output', str(tmp_path / 'stop')]) == 2
    err = capsys.readouterr().err
    assert "error: cannot decode image '" in err and "3.png'" in err and 'Traceback' not in err
    assert main(args + ['--output', str(tmp_path / 'skip'), '--skip-bad-images']) == 0
    assert json.loads((tmp_path / 'skip' / 'metrics.json').read_text())['bad_images'] == 1
