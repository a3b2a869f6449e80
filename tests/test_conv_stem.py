"""The convolutional stem (`model_kwargs: {stem: conv}`): the same tokens for every ViT family, a trained run that
rebuilds with it wherever its config is read, and clear errors where it cannot apply."""
import json

import pytest
import torch
import torch.nn as nn

from editvit.analysis.model_spec import ModelSpec, build_model
from editvit.cli import main
from editvit.errors import ConfigError
from editvit.models import create_model
from editvit.models.layers.conv_stem import conv_stem
from editvit.train import TrainConfig, train

SIZE = dict(img_size=32, patch_size=4, embed_dim=32, num_heads=2)


def test_stem_halves_the_grid_per_strided_convolution_up_to_the_width():
    stem = conv_stem(3, 64, 8)
    convs = [m for m in stem if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.stride) for c in convs] == [
        (3, 8, (3, 3), (2, 2)), (8, 16, (3, 3), (2, 2)), (16, 32, (3, 3), (2, 2)), (32, 64, (1, 1), (1, 1))]
    assert stem(torch.randn(2, 3, 40, 24)).shape == (2, 64, 5, 3)


@pytest.mark.parametrize('name, kwargs', [
    ('edit_tiny_patch16_224', dict(depth=2)),
    ('deit3_small_patch16_224', dict(depth=2)),
    ('deit3_small_patch16_224', dict(depth=2, reg_tokens=4)),
    ('edit_tiny_cb_patch16_224', dict(depth=2)),
    ('cait_xxs24_224', dict(depth=2)),
])
def test_every_vit_family_takes_the_stem_and_keeps_its_tokens(name, kwargs):
    torch.manual_seed(0)
    plain = create_model(name, 10, {**SIZE, **kwargs}).eval()
    conv = create_model(name, 10, {**SIZE, **kwargs, 'stem': 'conv'}).eval()
    assert isinstance(plain.patch_embed.proj, nn.Conv2d) and isinstance(conv.patch_embed.proj, nn.Sequential)
    x = torch.randn(2, 3, 32, 32)
    assert conv.forward_features(x).shape == plain.forward_features(x).shape
    assert conv(x).shape == (2, 10)
    # only the projection differs: the transformer's parameters are the same tensors by name and shape
    shapes = lambda m: {k: v.shape for k, v in m.state_dict().items() if not k.startswith('patch_embed.proj')}
    assert shapes(conv) == shapes(plain)


def test_stem_patch_is_the_default_and_the_same_model():
    torch.manual_seed(0)
    a = create_model('edit_tiny_patch16_224', 10, {**SIZE, 'depth': 2})
    torch.manual_seed(0)
    b = create_model('edit_tiny_patch16_224', 10, {**SIZE, 'depth': 2, 'stem': 'patch'})
    assert all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())


@pytest.mark.parametrize('kwargs, pretrained, message', [
    (dict(SIZE, stem='convolution'), False, "stem must be one of patch, conv, got 'convolution'"),
    (dict(SIZE, patch_size=6, img_size=36), False, 'needs a patch size that is a power of two'),
    (dict(SIZE, img_size=30, patch_size=4), False, 'needs an image size divisible by the patch size'),
    (dict(SIZE, embed_dim=36, num_heads=2, patch_size=8), False, 'needs embed_dim divisible by 8'),
    (dict(stem='conv'), True, 'replaces the patch embedding the pretrained weights hold'),
])
def test_what_the_stem_cannot_do_is_a_config_error(kwargs, pretrained, message):
    kwargs = {**kwargs, 'depth': 1}
    if kwargs.get('stem') is None:
        kwargs['stem'] = 'conv'
    with pytest.raises(ConfigError, match=message):
        create_model('deit3_small_patch16_224', 10, kwargs, pretrained=pretrained)


def test_a_trained_run_with_the_stem_is_rebuilt_by_eval_and_analysis(tmp_path, capsys):
    kwargs = dict(img_size=16, patch_size=4, embed_dim=32, depth=2, num_heads=2, stem='conv')
    out = tmp_path / 'run'
    train(TrainConfig(model='edit_tiny_patch16_224', model_kwargs=kwargs, dataset='synthetic', num_classes=4,
                      synthetic_samples=64, output=str(out), epochs=2, batch_size=16, lr=5e-3, warmup_epochs=0,
                      crop='src', three_augment=False, color_jitter=0.0, mixup=0.0, cutmix=0.0, num_workers=0,
                      progress=False))
    metrics = json.loads((out / 'metrics.json').read_text())
    capsys.readouterr()  # the training log
    args = ['eval', '--model', 'edit_tiny_patch16_224', '--model-kwargs', *[f'{k}={v}' for k, v in kwargs.items()],
            '--checkpoint', str(out / 'model.safetensors'), '--dataset', 'synthetic', '--num-classes', '4',
            '--synthetic-samples', '64', '--num-workers', '0']
    assert main(args) == 0
    result = json.loads(capsys.readouterr().out)
    assert result['top1'] == pytest.approx(metrics['val_top1'], abs=1e-3)
    assert result['loss'] == pytest.approx(metrics['val_loss'], abs=1e-5)
    model, _ = build_model(ModelSpec.from_run(out))
    assert isinstance(model.patch_embed.proj, nn.Sequential)
    assert model.patch_embed.proj[1].num_batches_tracked > 0  # the trained BatchNorm statistics, not fresh ones
