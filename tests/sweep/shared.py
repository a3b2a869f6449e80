"""What the sweep's fixtures and case files share: the one root folder run.sh chose for this sweep ($SWEEP_ROOT) and
the model, CPU and data options most cases run with."""
import os
import sys

ROOT = os.environ.get('SWEEP_ROOT') or sys.exit('SWEEP_ROOT is not set; run the sweep with: bash tests/sweep/run.sh')
D = f'{ROOT}/d'  # the fixtures (fixtures.py, fixtures2.py)
O = f'{ROOT}/o'  # what the cases write
W = f'{D}/w'  # weight files
Y = f'{D}/y'  # YAML configs
MODEL = ['--model', 'edit_tiny_patch16_224', '--model-kwargs', 'img_size=32', 'patch_size=4', 'depth=2']
CPU = ['--device', 'cpu', '--num-workers', '0', '--threads', '1']
SYNTHETIC = ['--dataset', 'synthetic', '--num-classes', '10', '--synthetic-samples', '16']
