"""Test-time interventions from the command line: [CLS] removal, register neurons and test-time registers."""
import json

import pytest

from editvit.cli import main

TINY = ['img_size=32', 'patch_size=8', 'depth=2', 'embed_dim=32', 'num_heads=2']


def _analyze(tmp_path, name, *args, model='deit3_small_patch16_224', kwargs=TINY):
    argv = ['analyze', '--model', model, '--model-kwargs', *kwargs, '--no-plots', '--threads', '1',
            '--output', str(tmp_path / name), *args]
    assert main(argv) == 0
    return json.loads((tmp_path / name / 'metrics.json').read_text())


def test_remove_cls_mask_from_the_command_line(tmp_path, capsys):
    doc = _analyze(tmp_path, 'mask', '--remove-cls', 'mask')
    assert 'intervention: [CLS] masked as a key in every layer' in capsys.readouterr().out
    assert doc['remove_cls'] == 'mask' and doc['model'].endswith('without [CLS] (mask)')
    assert doc['has_cls'] and all(layer['cls_attention'] == 0.0 for layer in doc['layers'])
    assert doc['summary']['cls_sink_rate'] == 0.0


def test_remove_cls_drop_keeps_the_registers_and_is_recorded(tmp_path, capsys):
    doc = _analyze(tmp_path, 'drop', '--remove-cls', 'drop', kwargs=[*TINY, 'reg_tokens=2'])
    assert 'dropped from the sequence' in capsys.readouterr().out
    assert doc['remove_cls'] == 'drop' and not doc['has_cls'] and doc['num_prefix_tokens'] == 2
    assert doc['num_tokens'] == 2 + 16 and 'sink_ratio' in doc['not_applicable']
    plain = _analyze(tmp_path, 'plain')
    assert plain['remove_cls'] is None and plain['has_cls']


def test_remove_cls_of_a_model_without_cls_is_one_clear_line(tmp_path, capsys):
    argv = ['analyze', '--model', 'edit_tiny_patch16_224', '--model-kwargs', *TINY, '--remove-cls', 'mask',
            '--no-plots', '--output', str(tmp_path / 'x')]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert 'no [CLS] token in its self-attention to remove' in err and len(err.strip().splitlines()) == 1
