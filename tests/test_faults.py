"""Faults tried with real processes (docs/guarantees.md): a Ctrl-C in the first moments of a command, while torch
loads; a signal while `editvit search` ranks its members; files and folders the user may not read or write."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _env(**extra):
    return dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=str(REPO), **extra)


def _console_script() -> Path:
    return Path(sys.executable).parent / 'editvit'


@pytest.mark.parametrize('entry', ['python -m editvit', 'editvit'])
def test_ctrl_c_while_torch_loads_is_one_line_and_exit_code_130(entry):
    if entry == 'editvit' and not _console_script().is_file():
        pytest.skip('the editvit console script is not installed next to this Python')
    command = [sys.executable, '-m', 'editvit'] if entry != 'editvit' else [str(_console_script())]
    proc = subprocess.Popen([*command, 'models'], env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=REPO)
    time.sleep(0.2)  # `import editvit` (torch, timm) takes seconds
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert 'Traceback' not in err and proc.returncode == 130, err
    assert err == 'editvit: interrupted\n'


def test_ctrl_c_while_a_program_imports_editvit_stays_a_keyboard_interrupt():
    proc = subprocess.Popen([sys.executable, '-c', 'import editvit'], env=_env(), stderr=subprocess.PIPE, text=True,
                            cwd=REPO)
    time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0 and err.strip().splitlines()[-1] == 'KeyboardInterrupt', err
