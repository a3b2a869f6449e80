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


SEARCH = ['search', '--dataset', 'synthetic', '--embed-dim', '16', '--batch-size', '8', '--population', '20',
          '--generations', '3', '--parents', '4', '--num-workers', '0', '--threads', '1', '--no-progress', '--epochs',
          '1', '--max-steps', '2']  # a search phase of seconds: 50-odd members scored


@pytest.mark.slow  # three search processes
def test_a_signal_while_the_search_ranks_members_leaves_a_run_that_resumes_to_the_same_result(tmp_path):
    import json
    from editvit.cli import main
    reference = tmp_path / 'reference'
    assert main([*SEARCH, '--output', str(reference)]) == 0
    run = tmp_path / 'run'
    for sig, command, code in ((signal.SIGTERM, SEARCH, 143), (signal.SIGINT, ['search', '--resume'], 130)):
        proc = subprocess.Popen([sys.executable, '-m', 'editvit', *command, '--output', str(run)], cwd=REPO,
                                env=_env(PYTHONHASHSEED='0'), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for line in proc.stdout:
            if line.startswith('searching the trained supernet'):
                break
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=120)
        said = [line for line in err.splitlines() if line.startswith('editvit')]
        assert proc.returncode == code and 'Traceback' not in err and len(said) == 1, err
        assert said[0].startswith(f'editvit search: stopped by {sig.name} while searching the trained supernet (')
        assert said[0].endswith(f'the supernet is kept and the search starts again on resume. Resume with: editvit '
                                f'search --resume --output {run}')
        assert (run / 'model.safetensors').is_file() and not (run / 'search.json').exists()
        assert not list(run.glob('.*.tmp'))
    assert main(['search', '--resume', '--output', str(run)]) == 0
    expected, got = (json.loads((d / 'search.json').read_text()) for d in (reference, run))
    assert got['best'] == expected['best'] and got['history'] == expected['history']
    assert (run / 'model.safetensors').read_bytes() == (reference / 'model.safetensors').read_bytes()
