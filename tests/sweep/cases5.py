"""The bad-input sweep of docs/bad_inputs.md (run with tests/sweep/run.sh): cases of one group as (id, argv)."""
from shared import CPU as C, D, MODEL as M, O, ROOT as S_, SYNTHETIC, W
SEG = f'{O}/seg_seg-good'  # the run of case seg-good (cases3.py)
import os, shutil
os.makedirs(f'{D}/img/nested/sub', exist_ok=True); shutil.copy(f'{D}/img/tiny.png', f'{D}/img/nested/sub/x.png')
if not os.path.islink(f'{D}/img/nested/loop'): os.symlink('..', f'{D}/img/nested/loop')
for src, dst in ((SEG, f'{S_}/segrun_copy'), (f'{S_}/run_good', f'{S_}/clsrun_copy')):
    shutil.rmtree(dst, ignore_errors=True); shutil.copytree(src, dst)
TR = ['train', *M, *C, *SYNTHETIC, '--batch-size', '8', '--epochs', '1', '--no-progress']
CASES = [
 ('an-images-nested-loop', ['analyze', '--model', 'edit_tiny_patch16_224', '--images', f'{D}/img/nested', '--output', f'{O}/an_nl', '--no-plots', '--threads', '1']),
 ('an-compare-ckpt2-random', ['analyze', '--model', 'edit_tiny_patch16_224', '--images', f'{D}/img/tiny.png', '--compare', 'edit_tiny_patch16_224', '--checkpoint2', f'{W}/random.pth', '--output', f'{O}/an_c2', '--no-plots', '--threads', '1']),
 ('eval-run-of-segmentation', ['eval', '--run', SEG, *C]),
 ('segeval-run-good', ['segment', 'eval', '--run', SEG, *C]),
 ('an-run-of-segmentation', ['analyze', '--run', SEG, '--output', f'{O}/an_seg', '--no-plots', '--threads', '1', '--images', f'{D}/img/tiny.png']),
 ('seg-resume-of-classification', ['segment', 'train', '--resume', '--output', f'{S_}/clsrun_copy', *C]),
 ('train-resume-of-segmentation', ['train', '--resume', '--output', f'{S_}/segrun_copy', *C]),
 ('train-finetune-seg-ckpt', TR + ['--finetune', f'{SEG}/model.safetensors', '--output', f'{O}/ftseg', '--overwrite']),
 ('train-kw-bool-string', ['train', '--model', 'edit_tiny_patch16_224', '--model-kwargs', 'img_size=32', 'patch_size=4', 'depth=2', 'qkv_bias=maybe', *C, *SYNTHETIC, '--batch-size', '8', '--epochs', '1', '--no-progress', '--output', f'{O}/kwb', '--overwrite']),
 ('train-kw-list', ['train', '--model', 'edit_tiny_patch16_224', '--model-kwargs', 'img_size=[32,32]', 'patch_size=4', 'depth=2', *C, *SYNTHETIC, '--batch-size', '8', '--epochs', '1', '--no-progress', '--output', f'{O}/kwl', '--overwrite']),
 ('segeval-scale-short-0', ['segment', 'eval', *M, *C, '--dataset', 'synthetic', '--checkpoint', f'{SEG}/model.safetensors', '--scale-short', '0']),
 ('seg-ade20k-missing', ['segment', 'train', *M, *C, '--dataset', 'ade20k', '--data-dir', f'{D}/nope', '--output', f'{O}/ade']),
 ('seg-ade20k-wrong-layout', ['segment', 'train', *M, *C, '--dataset', 'ade20k', '--data-dir', f'{D}/good', '--output', f'{O}/ade']),
 ('seg-pasted-imagefolder-nodir', ['segment', 'train', *M, *C, '--dataset', 'pasted', '--objects-dataset', 'imagefolder', '--output', f'{O}/pst']),
 ('eval-fm-carve-too-many', ['eval', *M, *C, '--dataset', 'fashion-mnist', '--data-dir', f'{D}/fm_good', '--num-classes', '10', '--val-split-per-class', '50', '--checkpoint', f'{W}/good.pth']),
 ('eval-imagefolder-wrong-numclasses', ['eval', *M, *C, '--dataset', 'imagefolder', '--data-dir', f'{D}/good', '--checkpoint', f'{W}/good.pth']),
 ('yaml-resume-true-new', ['train', *C, '--config', f'{D}/y/resume.yaml']),
 ('train-ckpt-every-huge', TR + ['--checkpoint-every', '1000000000', '--output', f'{O}/ceh', '--overwrite']),
 ('train-numclasses-huge', TR[:-9] + ['--dataset', 'synthetic', '--num-classes', '100000', '--synthetic-samples', '16', '--batch-size', '8', '--epochs', '1', '--no-progress', '--output', f'{O}/nch', '--overwrite']),
 ('seg-numclasses-0', ['segment', 'train', *M, *C, '--dataset', 'synthetic', '--num-classes', '0', '--output', f'{O}/snc']),
 ('seg-ignore-only-masks', ['segment', 'train', *M, *C, '--dataset', 'maskfolder', '--data-dir', f'{D}/seg_ignore', '--crop-size', '32', '--batch-size', '2', '--eval-batch-size', '2', '--epochs', '1', '--no-progress', '--output', f'{O}/sig_ign', '--overwrite']),
 ('eval-checkpoint-is-run-folder', ['eval', *M, *C, '--dataset', 'synthetic', '--num-classes', '10', '--checkpoint', f'{S_}/run_good']),
 ('eval-checkpoint-training-ckpt', ['eval', *M, *C, *SYNTHETIC, '--checkpoint', f'{S_}/run_good/checkpoint-last.pth']),
]
