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


def _terminal_sigint() -> None:
    """In the child: Ctrl-C as a terminal delivers it (default disposition). A shell's background job (`make test &`,
    nohup) starts with SIGINT ignored, and Python then installs no KeyboardInterrupt handler at all."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _console_script() -> Path:
    return Path(sys.executable).parent / 'editvit'


@pytest.mark.parametrize('entry', ['python -m editvit', 'editvit'])
def test_ctrl_c_while_torch_loads_is_one_line_and_exit_code_130(entry):
    if entry == 'editvit' and not _console_script().is_file():
        pytest.skip('the editvit console script is not installed next to this Python')
    command = [sys.executable, '-m', 'editvit'] if entry != 'editvit' else [str(_console_script())]
    proc = subprocess.Popen([*command, 'models'], env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=REPO, preexec_fn=_terminal_sigint)
    time.sleep(0.2)  # `import editvit` (torch, timm) takes seconds
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert 'Traceback' not in err and proc.returncode == 130, err
    assert err == 'editvit: interrupted\n'


def test_ctrl_c_while_a_program_imports_editvit_stays_a_keyboard_interrupt():
    proc = subprocess.Popen([sys.executable, '-c', 'import editvit'], env=_env(), stderr=subprocess.PIPE, text=True,
                            cwd=REPO, preexec_fn=_terminal_sigint)
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


# permissions: as root every file is readable and writable; the child process gives up root's right to bypass
# permission bits (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH) and stays root otherwise, so the interpreter, the venv and
# the checkout stay reachable wherever they are, and the bits of the files the test made decide

_WITHOUT_BYPASS = '''
import contextlib, ctypes, io, json, os, sys
import editvit.cli
if os.geteuid() == 0:
    class Header(ctypes.Structure):
        _fields_ = [('version', ctypes.c_uint32), ('pid', ctypes.c_int)]
    class Data(ctypes.Structure):
        _fields_ = [('effective', ctypes.c_uint32), ('permitted', ctypes.c_uint32), ('inheritable', ctypes.c_uint32)]
    libc = ctypes.CDLL(None, use_errno=True)
    header, data = Header(0x20080522, 0), (Data * 2)()  # _LINUX_CAPABILITY_VERSION_3: two 32-bit words
    if libc.capget(ctypes.byref(header), data) != 0:
        sys.exit('capget failed: ' + os.strerror(ctypes.get_errno()))
    for bit in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        data[0].effective &= ~(1 << bit)
        data[0].permitted &= ~(1 << bit)
    if libc.capset(ctypes.byref(header), data) != 0:
        sys.exit('capset failed: ' + os.strerror(ctypes.get_errno()))
results = []
for argv in json.loads(sys.argv[1]):
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = editvit.cli.main(argv)
    results.append((code, err.getvalue()))
print(json.dumps(results))
'''


@pytest.fixture
def open_dir():
    """A fresh folder for the permission cases, emptied afterwards even where a case left a folder of mode 000."""
    import shutil
    import tempfile
    folder = Path(tempfile.mkdtemp(prefix='editvit-permissions-'))
    folder.chmod(0o755)
    yield folder
    for path in folder.rglob('*'):  # a folder of mode 000 could not be removed
        if path.is_dir() and not path.is_symlink():
            path.chmod(0o755)
    shutil.rmtree(folder)


def _run_without_bypass(commands, folder: Path):
    """Run editvit commands in one child process, as root without the right to bypass permission bits if this
    process is root (else as this user, for whom the bits hold already); [(exit code, stderr)] per command."""
    import json
    env = _env(HOME=str(folder), MPLCONFIGDIR=str(folder / 'mpl'), EDITVIT_CACHE=str(folder / 'cache'))
    out = subprocess.run([sys.executable, '-c', _WITHOUT_BYPASS, json.dumps(commands)], env=env,
                         cwd=folder, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.splitlines()[-1])


def test_what_the_user_may_not_read_or_write_is_one_line_saying_permission_denied(open_dir):
    import numpy as np
    import torch
    from PIL import Image
    from editvit.models.factory import create_model
    kwargs = ['--model', 'edit_tiny_patch16_224', '--model-kwargs', 'img_size=16', 'patch_size=4', 'embed_dim=32',
              'depth=2', 'num_heads=2']
    cpu = ['--device', 'cpu', '--num-workers', '0', '--threads', '1']
    for name, make in (('no_train', 'train'), ('no_class', 'train/a'), ('no_image', 'train/a/0.png')):
        for split in ('train', 'val'):
            for c in 'ab':
                (open_dir / name / split / c).mkdir(parents=True)
                for i in range(4):
                    Image.fromarray(np.full((16, 16, 3), 40 * i, np.uint8)).save(open_dir / name / split / c / f'{i}.png')
        (open_dir / name / make).chmod(0)
    weights = open_dir / 'w.pth'
    torch.save(create_model('edit_tiny_patch16_224', 2, dict(img_size=16, patch_size=4, embed_dim=32, depth=2,
                                                                num_heads=2)).state_dict(), weights)
    weights.chmod(0)
    (open_dir / 'read_only').mkdir(mode=0o555)
    for name in ('writable', 'cache', 'mpl'):
        (open_dir / name).mkdir()
        (open_dir / name).chmod(0o777)

    def train(data: str, output: str):
        return ['train', *kwargs, *cpu, '--no-progress', '--dataset', 'imagefolder', '--data-dir', str(open_dir / data),
                '--num-classes', '2', '--epochs', '1', '--batch-size', '4', '--output', str(open_dir / output)]
    cases = [
        (train('no_train', 'writable/1'), f"permission denied: '{open_dir}/no_train/train'"),
        (train('no_class', 'writable/2'), "permission denied: the class folder(s) 'a' of"),
        (train('no_image', 'writable/3'), f"cannot read image '{open_dir}/no_image/train/a/0.png': permission denied"),
        (['eval', *kwargs, *cpu, '--dataset', 'synthetic', '--num-classes', '2', '--checkpoint', str(weights)],
         f"checkpoint '{weights}' cannot be read: permission denied"),
        (train('no_class', 'read_only'), f"cannot write in the output folder '{open_dir}/read_only': permission denied"),
        (train('no_class', 'read_only/run'), f"cannot create the output folder '{open_dir}/read_only/run': permission "
                                             f"denied"),
    ]
    for (argv, words), (code, err) in zip(cases, _run_without_bypass([argv for argv, _ in cases], open_dir)):
        assert code == 2 and err.count('\n') == 1 and words in err, (argv, err)
        assert 'Traceback' not in err and 'no such file' not in err.lower()
    assert not list((open_dir / 'writable').rglob('checkpoint-last.pth'))  # every case refused before training
