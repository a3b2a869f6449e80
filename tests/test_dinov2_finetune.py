"""benchmarks/dinov2_finetune.py on random DINOv2-S weights at 28 px (2 x 2 patches) and a tiny JPEG folder: what a
row holds, that one step trains the new and the pretrained weights at their own rates, and that a killed run resumes
to the same result."""
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from PIL import Image
from safetensors.torch import save_file

ROOT = Path(__file__).resolve().parents[1]
CLASSES = ('airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck')


def _script():
    spec = importlib.util.spec_from_file_location('dinov2_finetune', ROOT / 'benchmarks' / 'dinov2_finetune.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def weights(tmp_path_factory):
    torch.manual_seed(0)
    state_dict = timm.create_model('vit_small_patch14_dinov2', img_size=28, num_classes=0).state_dict()
    path = tmp_path_factory.mktemp('models') / 'dinov2.safetensors'
    save_file({k: v.contiguous() for k, v in state_dict.items()}, path)
    return path


@pytest.fixture(scope='module')
def cifar10(tmp_path_factory):
    root = tmp_path_factory.mktemp('cifar10')
    rng = np.random.default_rng(0)
    for split in ('train', 'test'):
        for label, name in enumerate(CLASSES):
            (root / split / name).mkdir(parents=True)
            for i in range(2):
                pixels = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / split / name / f'{i}.jpg')
    return root


def _run(module, weights, cifar10, work, *extra):
    module.main(['run', '--weights', str(weights), '--cifar10', str(cifar10), '--work', str(work), '--img-size', '28',
                 '--per-class-train', '2', '--per-class-test', '1', '--sink-images', '4', '--batch', '8',
                 '--seeds', '0', *extra])


def _rows(module):
    return [json.loads(line) for line in module.RESULTS.read_text().splitlines()]


def test_rows_hold_top1_sink_measures_and_machine_and_a_rerun_skips(weights, cifar10, tmp_path, capsys):
    m = _script()
    m.RESULTS = tmp_path / 'rows.jsonl'
    _run(m, weights, cifar10, tmp_path / 'work', '--epochs', '1')
    rows = _rows(m)
    assert [(r['model'], r['seed']) for r in rows] == [('vit', 0), ('edit', 0)]
    for r in rows:
        assert (r['train_images'], r['test_images'], r['steps'], r['sink_images']) == (20, 10, 3, 4)
        assert r['top1'] in {k / 10 for k in range(11)}
        assert r['resumed_from_epoch'] is None and len(r['epoch_losses']) == 1
        assert r['machine']['threads'] == 1 and len(r['machine']['loadavg']) == 3
        assert r['train_seconds'] > 0 and r['wall_seconds_this_process'] >= r['train_seconds']
        for when in ('sink_before', 'sink_after'):
            s = r[when]
            assert all(len(v) == 12 for v in s.values())
            assert all(0 <= v <= 1 for v in s['centre_share'] + s['max_token_attention'])
            assert all(0 < h <= np.log(4) + 1e-6 for h in s['cls_query_entropy'])  # 4 patches
        assert not (tmp_path / 'work' / f"{r['model']}_seed0" / 'checkpoint.pt').exists()
        assert (tmp_path / 'work' / f"{r['model']}_seed0" / 'maps_after.pt').exists()
    vit, edit = rows
    assert 'cls_attention' in vit['sink_before'] and 'cls_attention' not in edit['sink_before']
    patches = {f'patch({row},{col})' for row in range(2) for col in range(2)}
    assert set(vit['sink_after']['max_token']) <= patches | {'cls'}
    assert set(edit['sink_after']['max_token']) <= patches  # EDIT's encoder holds the patches only
    assert edit['new_params'] > vit['new_params'] == 384 * 10 + 10
    capsys.readouterr()
    _run(m, weights, cifar10, tmp_path / 'work', '--epochs', '1')
    assert len(_rows(m)) == 2
    assert capsys.readouterr().out.count('row present, skipped') == 2


def test_one_step_trains_new_weights_at_the_head_lr_and_pretrained_ones_at_the_small_lr(weights):
    m = _script()
    from safetensors.torch import load_file
    state_dict = load_file(weights)
    for kind, new in (('vit', ('head.',)), ('edit', ('head.', 'decoder.'))):
        model = m.build(kind, state_dict, 28, seed=0)
        groups = m.param_groups(model, kind, lr=1e-5, head_lr=1e-3)
        by_id = {id(p): g for g in groups for p in g['params']}
        for name, p in model.named_parameters():
            assert by_id[id(p)]['lr'] == (1e-3 if name.startswith(new) else 1e-5), name
        assert by_id[id(model.pos_embed)]['weight_decay'] == 0 and by_id[id(model.head.weight)]['weight_decay'] > 0
        before = {n: p.detach().clone() for n, p in model.named_parameters()}
        opt = torch.optim.AdamW(groups)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, m.schedule(10))
        m.train_step(model, opt, sched, torch.randn(4, 3, 28, 28), torch.tensor([0, 1, 2, 3]))
        changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
        assert {'head.weight', 'blocks.0.attn.qkv.weight', 'blocks.11.mlp.fc2.weight', 'patch_embed.proj.weight',
                'cls_token'} <= changed
        if kind == 'edit':
            assert {'decoder.k.weight', 'decoder.v.weight', 'decoder.norm.weight'} <= changed


def test_a_run_killed_after_its_first_epoch_resumes_to_the_same_result(weights, cifar10, tmp_path, monkeypatch):
    whole = _script()
    whole.RESULTS = tmp_path / 'whole.jsonl'
    _run(whole, weights, cifar10, tmp_path / 'whole', '--epochs', '2', '--models', 'edit')

    killed = _script()
    killed.RESULTS = tmp_path / 'killed.jsonl'
    save = killed.atomic_save

    def save_then_stop(obj, path):
        save(obj, path)
        if path.name == 'checkpoint.pt':
            raise KeyboardInterrupt  # the process is killed right after its first epoch's checkpoint
    monkeypatch.setattr(killed, 'atomic_save', save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        _run(killed, weights, cifar10, tmp_path / 'killed', '--epochs', '2', '--models', 'edit')
    assert not killed.RESULTS.exists() and (tmp_path / 'killed' / 'edit_seed0' / 'checkpoint.pt').exists()
    monkeypatch.setattr(killed, 'atomic_save', save)
    _run(killed, weights, cifar10, tmp_path / 'killed', '--epochs', '2', '--models', 'edit')
    [a], [b] = _rows(whole), _rows(killed)
    assert b['resumed_from_epoch'] == 1 and a['resumed_from_epoch'] is None
    assert (b['top1'], b['epoch_losses'], b['sink_before'], b['sink_after']) == \
        (a['top1'], a['epoch_losses'], a['sink_before'], a['sink_after'])


def test_missing_weights_say_what_to_pass(cifar10, tmp_path):
    with pytest.raises(SystemExit, match='pass --weights FILE or set EDITVIT_MODELS'):
        _script().main(['run', '--weights', str(tmp_path / 'absent.safetensors'), '--cifar10', str(cifar10),
                        '--work', str(tmp_path / 'work')])
