"""Without the `plots` extra (matplotlib, scikit-image) the metrics still work and drawing says what to install."""
import subprocess
import sys
import textwrap

import pytest

BLOCK_PLOTTING = textwrap.dedent('''
    import sys
    class Block:
        def find_spec(self, name, path=None, target=None):
            if name.split('.')[0] in ('matplotlib', 'skimage'):
                raise ImportError(f'No module named {name!r} (blocked)')
    sys.meta_path.insert(0, Block())
''')


def _run(code: str, tmp_path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, '-c', BLOCK_PLOTTING + textwrap.dedent(code)], capture_output=True,
                          text=True, cwd=tmp_path, timeout=300)


@pytest.mark.parametrize('plots, expected', [(False, 'metrics ok'), (True, "pip install 'editvit[plots]'")])
def test_analysis_without_matplotlib(tmp_path, plots, expected):
    from PIL import Image
    Image.new('RGB', (32, 32), (200, 30, 30)).save(tmp_path / 'red.png')
    done = _run(f'''
        import torch; torch.set_num_threads(1)
        from editvit.cli import main
        code = main(['analyze', '--model', 'edit_tiny_patch16_224', '--model-kwargs', 'img_size=32', 'patch_size=8',
                     'depth=2', '--images', 'red.png', '--threads', '1', '--output', 'out'] + {[] if plots else ['--no-plots']})
        print('metrics ok' if code == 0 else f'exit {{code}}')
    ''', tmp_path)
    assert expected in done.stdout + done.stderr, done.stderr[-2000:]
