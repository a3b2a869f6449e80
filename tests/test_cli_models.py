"""`editvit models` and `python -m editvit`."""
import subprocess
import sys

import pytest

from editvit.cli import main


def test_models_lists_edit_with_parameter_counts(capsys):
    assert main(['models', 'edit_*patch16_224']) == 0
    rows = dict(line.split()[:2] for line in capsys.readouterr().out.splitlines())
    assert {k: v for k, v in rows.items() if '_cb_' not in k and '_ps_' not in k} == {
        'edit_tiny_patch16_224': '5.80M', 'edit_small_patch16_224': '22.36M', 'edit_base_patch16_224': '87.77M'}


def test_unknown_pattern_is_a_clear_error(capsys):
    assert main(['models', 'no_such_model*']) == 2
    assert "no registered model matches 'no_such_model*'" in capsys.readouterr().err


@pytest.mark.slow  # a second Python process
def test_python_dash_m_runs_the_cli():
    out = subprocess.run([sys.executable, '-m', 'editvit', 'models', 'edit_tiny_patch16_224'], capture_output=True, text=True,
                         check=True).stdout
    assert out.split()[:2] == ['edit_tiny_patch16_224', '5.80M']


def test_models_without_a_pattern_lists_everything_editvit_registers(capsys):
    assert main(['models']) == 0
    names = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert {'edit_small_patch16_224', 'edit_small_cb_patch16_224', 'deit3_small_cb_patch16_224', 'psvit_2d_tiny',
            'psvit_1d_tiny'} <= set(names)
    assert not any(name.startswith(('vit_', 'resnet')) for name in names)  # timm's own models are not listed
