"""The bad-input sweep of docs/bad_inputs.md (run with tests/sweep/run.sh): cases of one group as (id, argv)."""
from shared import CPU as C, D, MODEL as M, O, ROOT as S_, SYNTHETIC, W
SM = M
EV = ['eval', *M, *C, '--batch-size', '4', *SYNTHETIC, '--checkpoint', f'{W}/good.pth']
CASES = [
 ('eval-output-under-file', EV + ['--output', f'{O}/afile/m.json']),
 ('eval-output-empty', EV + ['--output', '']),
 ('segeval-output-file', ['segment', 'eval', *SM, *C, '--dataset', 'synthetic', '--checkpoint', f'{W}/good.pth', '--output', f'{O}/afile']),
 ('an-threads-0', ['analyze', '--model', 'edit_tiny_patch16_224', '--images', f'{D}/img/tiny.png', '--threads', '0', '--output', f'{O}/an_t0', '--no-plots']),
 ('an-output-empty', ['analyze', '--model', 'edit_tiny_patch16_224', '--images', f'{D}/img/tiny.png', '--output', '', '--no-plots']),
 ('search-output-empty', ['search', '--dataset', 'synthetic', '--output', '']),
 ('train-datadir-empty', ['train', *M, *C, '--dataset', 'imagefolder', '--data-dir', '', '--output', f'{O}/dd']),
 ('train-kw-empty-item', ['train', '--model', 'edit_tiny_patch16_224', '--model-kwargs', '', *C, '--dataset', 'synthetic', '--output', f'{O}/kwe']),
 ('train-model-spaces', ['train', '--model', '  ', *C, '--dataset', 'synthetic', '--output', f'{O}/ms']),
 ('yaml-output-empty', ['train', *M, *C, '--dataset', 'synthetic', '--config', f'{D}/y/outempty.yaml']),
 ('yaml-huge-batch', ['train', *M, *C, *SYNTHETIC, '--output', f'{O}/hb', '--overwrite', '--config', f'{D}/y/hugeint.yaml']),
 ('yaml-strnum-lr', ['train', *M, *C, *SYNTHETIC, '--batch-size', '8', '--epochs', '1', '--no-progress', '--output', f'{O}/sn', '--overwrite', '--config', f'{D}/y/strnum.yaml']),
 ('yaml-kw-unknown', ['train', *C, '--dataset', 'synthetic', '--output', f'{O}/ku', '--config', f'{D}/y/kwunknown.yaml']),
 ('train-no-model', ['train', *C, '--dataset', 'synthetic', '--output', f'{O}/nm']),
 ('train-no-dataset', ['train', *M, *C, '--output', f'{O}/nd']),
 ('train-no-output', ['train', *M, *C, '--dataset', 'synthetic']),
 ('train-resume-and-overwrite', ['train', *M, *C, '--dataset', 'synthetic', '--output', f'{O}/ro2', '--resume', '--overwrite']),
 ('train-config-plus-resume', ['train', '--resume', '--output', f'{S_}/run_good', '--config', f'{D}/y/empty.yaml', *C]),
 ('train-resume-bigger-batch', ['train', '--resume', '--output', f'{S_}/run_trunc_st', '--batch-size', '16', *C]),
 ('train-unknown-option', ['train', '--epoch', '3']),
 ('no-command', []),
 ('unknown-command', ['trian']),
 ('segment-no-action', ['segment']),
 ('train-finetune-and-resume', ['train', '--resume', '--output', f'{S_}/run_trunc_st', '--finetune', f'{W}/good.pth', *C]),
 ('train-fm-as-imagefolder', ['train', *M, *C, '--dataset', 'imagefolder', '--data-dir', f'{D}/fm_good', '--output', f'{O}/fi']),
 ('train-cifar-missing-env', ['train', *M, *C, '--dataset', 'cifar10', '--output', f'{O}/ce']),
 ('train-pil-path-tensor', ['train', *M, *C, '--dataset', 'imagefolder', '--data-dir', f'{D}/mixed', '--num-classes', '2', '--batch-size', '4', '--epochs', '1', '--no-progress', '--data-path', 'tensor', '--output', f'{O}/mt', '--overwrite']),
]
