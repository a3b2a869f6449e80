"""The command line's one error boundary: bad input is one line on stderr and exit code 2; --debug shows more."""
import errno
import subprocess
import sys

import pytest

from editvit.cli import main, os_error_message


def test_missing_checkpoint_is_one_line_and_exit_2(tmp_path, capsys):
    code = main(['eval', '--model', 'edit_tiny_patch16_224', '--checkpoint', str(tmp_path / 'none.pth'),
                 '--dataset', 'synthetic', '--num-classes', '10'])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count('\n') == 1 and err.startswith('editvit eval: error:') and 'none.pth' in err


@pytest.mark.parametrize('number, words', [(errno.ENOSPC, 'no space left'), (errno.EACCES, 'permission denied'),
                                           (errno.EROFS, 'read-only'), (errno.EISDIR, 'is a folder')])
def test_os_errors_name_the_path_and_the_problem(number, words):
    message = os_error_message(OSError(number, 'ignored', '/out/checkpoint-last.pth'))
    assert words in message and '/out/checkpoint-last.pth' in message


def test_debug_shows_the_traceback(tmp_path):
    command = [sys.executable, '-m', 'editvit', '--debug', 'eval', '--model', 'edit_tiny_patch16_224',
               '--checkpoint', str(tmp_path / 'none.pth'), '--dataset', 'synthetic', '--num-classes', '10']
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and 'Traceback' in done.stderr and 'none.pth' in done.stderr
