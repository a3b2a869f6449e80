"""Configs are checked data: YAML and command-line values, unknown keys named, the paper's Table 2 shipped."""
from pathlib import Path

import pytest
import torch

import editvit
from editvit import create_model
from editvit.cli import main
from editvit.configs import list_recipes, recipe_path
from editvit.train import ConfigError, TrainConfig, load_config
from editvit.train.config import resume_differences, to_dict
from editvit.train.recipe import plan_batches, scaled_lr



def test_yaml_values_are_typed_and_command_line_wins(tmp_path):
    path = tmp_path / 'run.yaml'
    path.write_text('model: edit_tiny_patch16_224\nlr: 3e-3\nepochs: 4\nmodel_kwargs: {img_size: 32, depth: 4}\n')
    cfg = load_config(path, overrides={'epochs': 2, 'model_kwargs': {'depth': 2}})
    assert cfg.lr == 0.003  # YAML 1.1 reads 3e-3 as a string; it is a float here
    assert cfg.epochs == 2
    assert cfg.model_kwargs == {'img_size': 32, 'depth': 2}  # command-line kwargs add to the file's


def test_unknown_yaml_key_is_named_with_the_valid_keys(tmp_path):
    path = tmp_path / 'run.yaml'
    path.write_text('epochs: 3\nlearning_rate: 0.1\n')
    with pytest.raises(ConfigError, match=r"unknown key 'learning_rate' in .*run.yaml; valid keys: model, "
                                          r"model_kwargs, .*\blr\b"):
        load_config(path)


@pytest.mark.parametrize('text, message', [
    ('epochs: three', "'epochs' must be an integer, got 'three'"),
    ('amp: fp8', "'amp' must be one of bf16, fp16, none, got 'fp8'"),
    ('ema: 1', "'ema' must be true or false, got 1"),
    ('lr: fast', "'lr' must be a number, got 'fast'"),
    ('- a list', 'must hold a mapping'),
])
def test_bad_values_are_named(tmp_path, text, message):
    path = tmp_path / 'bad.yaml'
    path.write_text(text + '\n')
    with pytest.raises(ConfigError, match=message.replace('(', r'\(')):
        load_config(path)


def test_missing_required_values_and_inconsistent_ones():
    with pytest.raises(ConfigError, match="'model' is required"):
        TrainConfig(dataset='synthetic', output='x').validate()
    with pytest.raises(ConfigError, match="'batch_size' must be even"):
        TrainConfig(model='m', dataset='synthetic', output='x', batch_size=7).validate()
    with pytest.raises(ConfigError, match="fp16' needs a GPU"):
        TrainConfig(model='m', dataset='synthetic', output='x', amp='fp16', device='cpu').validate()


def test_unknown_model_and_model_kwarg_are_named():
    with pytest.raises(ConfigError, match=r"unknown model 'edit_tiny_patch16_24'; did you mean edit_tiny_patch16_224"):
        create_model('edit_tiny_patch16_24', 10)
    with pytest.raises(ConfigError, match=r"unknown model kwarg 'dpeth' for edit_tiny_patch16_224; valid: img_size, "
                                          r"patch_size, .*depth"):
        create_model('edit_tiny_patch16_224', 10, {'dpeth': 2})


def test_cli_reports_config_errors_without_traceback(tmp_path, capsys):
    path = tmp_path / 'run.yaml'
    path.write_text('bogus: 1\n')
    assert main(['train', '--config', str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("editvit train: error: unknown key 'bogus'") and 'Traceback' not in err
    assert main(['train', '--model', 'no_such_model', '--dataset', 'synthetic', '--output', str(tmp_path / 'o'),
                 '--model-kwargs', 'depth=2']) == 2
    assert "unknown model 'no_such_model'" in capsys.readouterr().err
    assert main(['train', '--model', 'edit_tiny_patch16_224', '--dataset', 'synthetic', '--output',
                 str(tmp_path / 'o'), '--model-kwargs', 'depht=2']) == 2
    assert "unknown model kwarg 'depht'" in capsys.readouterr().err


def test_gradient_accumulation_reaches_the_global_batch_and_lr_scales_linearly():
    cfg = load_config(recipe_path('in1k_pretrain'), overrides={'model': 'm', 'dataset': 'imagefolder'})
    plan = plan_batches(cfg, world_size=8)
    assert (plan.batch_size, plan.accum_steps, plan.global_batch) == (64, 4, 2048)
    assert plan_batches(cfg, world_size=1).accum_steps == 32
    assert scaled_lr(cfg, 2048) == pytest.approx(3e-3)
    assert scaled_lr(cfg, 1024) == pytest.approx(1.5e-3)  # linear: lr x global batch / 2048
    with pytest.raises(ConfigError, match='global_batch_size 2048 is not a multiple of batch_size x processes'):
        plan_batches(cfg, world_size=3)


# Table 2: (epochs, global batch, lr, weight decay, smoothing, drop path, repeated aug, clip, hflip, crop, mixup,
# cutmix, colour jitter, loss)
TABLE_2 = {
    'in21k_pretrain.yaml': (240, 2048, 3e-3, 0.02, 0.1, 0.05, False, 1.0, 0.5, 'src', 0.0, 1.0, 0.3, 'ce'),
    'in1k_pretrain.yaml': (800, 2048, 3e-3, 0.02, 0.0, 0.05, True, 1.0, 0.5, 'rrc', 0.8, 1.0, 0.3, 'bce'),
    'transfer.yaml': (400, 768, 1e-4, 0.01, 0.1, 0.1, False, None, 0.0, 'src', 0.0, 1.0, 0.0, 'ce'),
}


@pytest.mark.parametrize('name', sorted(TABLE_2))
def test_shipped_configs_are_table_2(name):
    c = load_config(recipe_path(name))
    got = (c.epochs, c.global_batch_size, c.lr, c.weight_decay, c.smoothing, c.drop_path, c.repeated_aug,
           c.clip_grad, c.hflip, c.crop, c.mixup, c.cutmix, c.color_jitter, c.loss)
    assert got == TABLE_2[name]
    assert (c.optimizer, c.warmup_epochs, c.three_augment, c.layer_scale_init, c.eval_crop_ratio) == \
           ('lamb', 5.0, True, 1e-6, 1.0)
    assert c.lr_base_batch == c.global_batch_size  # lr exactly as the paper's at the paper's batch


@pytest.mark.parametrize('name', ['cifar10_cpu.yaml', 'fashion_mnist_cpu.yaml'])
def test_cpu_configs_build_their_model(name):
    c = load_config(recipe_path(name), overrides={'output': 'x'}).validate()
    assert c.amp == 'none' and c.device is None  # fp32: see the comment in the file
    model = create_model(c.model, 10, c.model_kwargs, drop_path=c.drop_path)
    assert model.patch_embed.img_size == ((32, 32) if 'cifar' in name else (28, 28))
    assert isinstance(model.patch_embed.proj, torch.nn.Sequential)  # the convolutional stem (stem: conv)


def test_resume_differences_name_what_changes_the_run():
    saved = to_dict(TrainConfig(model='a', epochs=3, output='x'))
    now = to_dict(TrainConfig(model='b', epochs=3, output='y', num_workers=0))
    assert resume_differences(saved, now) == ["model: 'a' -> 'b'"]  # output and workers may change


def test_command_line_options_mirror_the_config_fields():
    from editvit.cli import build_parser
    from editvit.cli.train import overrides_from

    args = build_parser().parse_args(['train', '--clip-grad', 'none', '--no-three-augment', '--global-batch-size',
                                      '256', '--model-kwargs', 'img_size=32', 'qkv_bias=False', 'decoder_norm=post',
                                      'init_values=1e-5'])
    values = overrides_from(args, TrainConfig)
    assert values == {'clip_grad': None, 'three_augment': False, 'global_batch_size': 256,
                      'model_kwargs': {'img_size': 32, 'qkv_bias': False, 'decoder_norm': 'post',
                                       'init_values': 1e-5}}  # options not given stay out: the YAML value stands


def test_recipes_ship_inside_the_package_and_are_found_by_name():
    assert list_recipes() == ['cifar10_cpu', 'fashion_mnist_cpu', 'in1k_pretrain', 'in21k_pretrain',
                              'segmenter_ade20k', 'segmenter_synthetic_cpu', 'transfer']
    path = recipe_path('transfer')
    assert path == recipe_path('transfer.yaml') and path.parent == Path(editvit.__file__).parent / 'configs'
    with pytest.raises(ConfigError, match=r"no shipped recipe 'cifar11_cpu'; the recipes are: cifar10_cpu, "):
        recipe_path('cifar11_cpu')


def test_layer_scale_init_zero_builds_the_model_without_layer_scale():
    from editvit import create_model
    kwargs = dict(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2)
    plain = create_model('edit_tiny_patch16_224', 10, kwargs, layer_scale_init=0)
    scaled = create_model('edit_tiny_patch16_224', 10, kwargs, layer_scale_init=1e-4)
    assert not any('ls1' in k or 'gamma' in k for k in plain.state_dict())
    assert float(scaled.blocks[0].ls1.gamma[0]) == pytest.approx(1e-4)
