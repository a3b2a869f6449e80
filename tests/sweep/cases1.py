"""The bad-input sweep of docs/bad_inputs.md (run with tests/sweep/run.sh): cases of one group as (id, argv)."""
from shared import CPU as C, D, MODEL as M, O
T = [*M, *C, '--batch-size', '4', '--epochs', '1', '--no-progress']
def tr(name, *a): return ['train', *T, '--output', f'{O}/{name}', '--overwrite', *a]
def fold(name, d, *a): return (name, tr(name, '--dataset', 'imagefolder', '--data-dir', f'{D}/{d}', '--num-classes', '2', *a))
def fm(name, d): return (name, tr('fm', '--dataset', 'fashion-mnist', '--data-dir', f'{D}/{d}'))
def cifar(name, dataset, d): return (name, tr('c', '--dataset', dataset, '--data-dir', f'{D}/{d}'))
CASES = [
 fold('folder-missing', 'nope'),
 fold('folder-empty', 'empty'),
 fold('folder-noclasses', 'trainonly_noclasses'),
 fold('folder-oneclass', 'oneclass'),
 fold('folder-emptyclasses', 'emptyclass'),
 fold('folder-oneemptyclass', 'oneemptyclass'),
 fold('folder-trainisfile', 'trainisfile'),
 fold('folder-filesinroot', 'filesinroot'),
 fold('folder-symloop', 'symloop'),
 fold('folder-nonimage', 'nonimage'),
 fold('folder-nonimage-skip', 'nonimage', '--skip-bad-images'),
 fold('folder-zerobyte', 'zerobyte'),
 fold('folder-mixed', 'mixed'),
 fold('folder-bomb', 'bomb'),
 fold('folder-bomb-skip', 'bomb', '--skip-bad-images'),
 fold('folder-classmismatch', 'classmismatch'),
 fold('folder-noval', 'noval'),
 fold('folder-noval-carve', 'noval', '--val-split-per-class', '1'),
 fold('folder-noval-carve-too-many', 'noval', '--val-split-per-class', '10'),
 fold('folder-numclasses-3', 'good', '--num-classes', '3'),
 fold('folder-numclasses-1', 'good', '--num-classes', '1'),
 fold('folder-datadir-file', 'good/train/a/0.png'),
 fm('fm-magic', 'fm_magic'),
 fm('fm-trunc', 'fm_trunc'),
 fm('fm-labels-out-of-range', 'fm_labels'),
 fm('fm-count-mismatch', 'fm_count'),
 fm('fm-gz-truncated', 'fm_gzbroken'),
 fm('fm-not-gz', 'fm_notgz'),
 fm('fm-missing', 'fm_missing'),
 fm('fm-labels-2d', 'fm_labels2d'),
 fm('fm-empty', 'fm_empty'),
 cifar('cifar-notcifar', 'cifar10', 'cifar_bad'),
 cifar('cifar-evilpickle', 'cifar10', 'cifar_evil'),
 cifar('cifar-emptybatches', 'cifar10', 'cifar_empty_batches'),
 cifar('cifar100-on-fm', 'cifar100', 'fm_good'),
]
