"""The run folder: a lock against two writers, no result replaced without --overwrite, clear resume messages."""
import os
import subprocess
import sys

import pytest

from editvit.errors import ConfigError
from editvit.train.run_folder import RunFolder


def test_new_run_into_a_folder_with_results_is_refused_without_overwrite(tmp_path):
    (tmp_path / 'model.safetensors').write_bytes(b'weights')
    (tmp_path / 'metrics.json').write_text('{}')
    (tmp_path / 'notes.txt').write_text('mine')
    with pytest.raises(ConfigError, match=r'already holds a run \(model.safetensors, metrics.json\).*--overwrite'):
        RunFolder(tmp_path).open(resume=False)
    assert (tmp_path / 'model.safetensors').read_bytes() == b'weights'
    with RunFolder(tmp_path) as folder:
        folder.open(resume=False, overwrite=True)
    assert not (tmp_path / 'model.safetensors').exists() and not (tmp_path / 'metrics.json').exists()
    assert (tmp_path / 'notes.txt').read_text() == 'mine'  # only run results are removed


def test_second_writer_is_refused_while_the_first_holds_the_lock(tmp_path):
    holder = subprocess.Popen([sys.executable, '-c', (
        'import sys, time; from editvit.train.run_folder import RunFolder; '
        f'RunFolder({str(tmp_path)!r}).open(resume=False); print("locked", flush=True); time.sleep(60)')],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == 'locked'
        with pytest.raises(ConfigError, match=rf'in use by another run \(process {holder.pid}\)'):
            RunFolder(tmp_path).open(resume=False)
    finally:
        holder.kill()
        holder.wait()
    with RunFolder(tmp_path) as folder:  # a killed holder leaves the .lock file but not the lock
        folder.open(resume=False)


def test_resume_messages_say_what_happened_and_what_to_do(tmp_path):
    with pytest.raises(ConfigError, match='no run was started here.*--overwrite'):
        RunFolder(tmp_path).open(resume=True)
    (tmp_path / 'config.yaml').write_text('model: x\n')
    (tmp_path / '.checkpoint-last.pth.abc123.tmp').write_bytes(b'x' * 1000)
    with pytest.raises(ConfigError, match='stopped before its first checkpoint.*original editvit train command'):
        RunFolder(tmp_path).open(resume=True)
    assert not (tmp_path / '.checkpoint-last.pth.abc123.tmp').exists()
    (tmp_path / 'metrics.json').write_text('{}')
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(ConfigError, match='is finished.*nothing was changed.*larger --epochs'):
        RunFolder(tmp_path).open(resume=True)
    assert sorted(os.listdir(tmp_path)) == before


def test_output_that_is_a_file_or_not_writable_fails_up_front(tmp_path):
    (tmp_path / 'file').write_text('x')
    with pytest.raises(ConfigError, match='is a file, not a folder'):
        RunFolder(tmp_path / 'file').open(resume=False)
    with pytest.raises(ConfigError, match='pass one of them'):
        RunFolder(tmp_path / 'run').open(resume=True, overwrite=True)
