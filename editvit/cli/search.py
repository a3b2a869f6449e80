"""`editvit search`: PSViT's search for token numbers and attention sharing under a MACs budget (thin over
`editvit.search.run_search`)."""
import argparse
import math
import os
from typing import Any, Dict, Tuple

from . import UsageError


def _ints(text: str) -> Tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(','))
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected comma-separated integers, got {text!r}') from None


def _stages(text: str) -> Tuple[Tuple[int, ...], ...]:
    return tuple(_ints(stage) for stage in text.split('/'))


# the options' values when not given (parsed values are only those given, so that --resume can tell them apart)
DEFAULTS = dict(dataset='cifar10', data_dir=None, budget_mmacs=None, token_choices=((64, 49), (25, 16), (9, 4)),
                depths=(2, 2, 2), pooling='2d', img_size=32, patch_size=4, embed_dim=64, num_heads=2, num_classes=10,
                epochs=5, max_steps=None, batch_size=128, lr=1e-3, val_split_per_class=100, val_batches=None,
                population=16, generations=4, parents=4, seed=0, num_workers=2, threads=None,
                output='runs/psvit_search', resume=False, overwrite=False, checkpoint_every=50, progress=True)
SPACE_OPTIONS = ('token_choices', 'depths', 'pooling', 'img_size', 'patch_size', 'embed_dim', 'num_heads',
                 'num_classes')


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        'search', help='PSViT search: token numbers and attention sharing under a MACs budget (supernet + evolution)',
        description='Train a weight-sharing PSViT supernet, then search its compact space of token numbers per stage '
                    'and sharing choices per layer pair by evolution, scoring members on a held-out training split.',
        argument_default=argparse.SUPPRESS)
    p.add_argument('--dataset', help="data set (default cifar10; 'synthetic' needs no files)")
    p.add_argument('--data-dir', help='data folder: train/<class>/*.jpg (default $EDITVIT_DATA/<dataset>)')
    p.add_argument('--budget-mmacs', type=float, help='largest millions of MACs per image (default none)')
    p.add_argument('--token-choices', type=_stages,
                   help="candidate patch tokens per stage, stages split by '/' (default 64,49/25,16/9,4)")
    p.add_argument('--depths', type=_ints, help='layers per stage (default 2,2,2)')
    p.add_argument('--pooling', choices=('1d', '2d'), help='token pooling (default 2d)')
    p.add_argument('--img-size', type=int, help='(default 32)')
    p.add_argument('--patch-size', type=int, help='(default 4)')
    p.add_argument('--embed-dim', type=int, help='(default 64)')
    p.add_argument('--num-heads', type=int, help='(default 2)')
    p.add_argument('--num-classes', type=int, help='(default 10)')
    p.add_argument('--epochs', type=int, help='supernet training epochs (default 5)')
    p.add_argument('--max-steps', type=int, help='stop supernet training after this many steps')
    p.add_argument('--batch-size', type=int, help='(default 128)')
    p.add_argument('--lr', type=float, help='(default 1e-3)')
    p.add_argument('--val-split-per-class', type=int,
                   help='training images per class held out to score members (default 100)')
    p.add_argument('--val-batches', type=int, help='score each member on at most this many batches')
    p.add_argument('--population', type=int, help='(default 16)')
    p.add_argument('--generations', type=int, help='evolution rounds (0: random search; default 4)')
    p.add_argument('--parents', type=int, help='(default 4)')
    p.add_argument('--seed', type=int, help='(default 0)')
    p.add_argument('--num-workers', type=int, help='data loader worker processes (default 2)')
    p.add_argument('--threads', type=int,
                   help='torch CPU threads (default: OMP_NUM_THREADS if set, else the idle cores)')
    p.add_argument('--output',
                   help='run folder: the supernet run (config.yaml, checkpoint, summary.csv, training.png, weights) '
                        'and the result, search.json (default runs/psvit_search)')
    p.add_argument('--resume', action='store_true',
                   help='continue the run in --output with the options it was started with (its config.yaml; options '
                        'given again must not change the supernet), then search; a finished search is kept, or '
                        'searched again with other --population/--generations/--parents/--val-batches')
    p.add_argument('--overwrite', action='store_true', help='replace the results of an earlier run in --output')
    p.add_argument('--checkpoint-every', type=int,
                   help='also checkpoint every N supernet updates within an epoch (0: at epoch ends; default 50)')
    p.add_argument('--no-progress', dest='progress', action='store_false', help='no progress bar')
    p.set_defaults(func=run)


def _budget_macs(mmacs: float) -> int:
    if not 0 < mmacs < math.inf:
        raise UsageError(f'--budget-mmacs must be a finite number of millions of MACs above 0, got {mmacs}')
    return int(mmacs * 1e6)


def _resume(given: Dict[str, Any]):
    """`resume_search` with the options given on the command line, named as the run's config names them."""
    from ..search.run import resume_search

    if 'output' not in given:
        raise UsageError('--resume needs --output DIR, the run to continue')
    overrides = {k: v for k, v in given.items() if k not in SPACE_OPTIONS + ('budget_mmacs', 'resume', 'output')}
    space = {k: v for k, v in given.items() if k in SPACE_OPTIONS}
    if space:
        overrides['space'] = space
    if 'budget_mmacs' in given:
        overrides['budget_macs'] = _budget_macs(given['budget_mmacs'])
    return resume_search(given['output'], **overrides)


def run(args: argparse.Namespace) -> int:
    from ..search import PSViTSearchSpace, run_search

    given = {k: v for k, v in vars(args).items() if k in DEFAULTS}
    options = {**DEFAULTS, **given}
    try:
        if options['resume'] and not options['overwrite']:
            result = _resume(given)
        else:
            space = PSViTSearchSpace(**{k: options[k] for k in SPACE_OPTIONS})
            budget = _budget_macs(options['budget_mmacs']) if options['budget_mmacs'] is not None else None
            print(f'search space: {space.size} members, {space.macs(space.cheapest()) / 1e6:.2f} to '
                  f'{space.macs(space.largest()) / 1e6:.2f} MMACs', flush=True)
            result = run_search(options['dataset'], options['data_dir'], space, budget_macs=budget,
                                **{k: v for k, v in options.items() if k not in SPACE_OPTIONS
                                   + ('dataset', 'data_dir', 'budget_mmacs')})
    except ValueError as e:  # DataError included
        raise UsageError(str(e)) from e
    print(f'best: tokens {list(result.best.num_tokens)}, sharing layers '
          f'{[i for i, s in enumerate(result.best.share_attention) if s]}, top-1 {result.score:.2f}% on the held-out '
          f'split, {result.macs / 1e6:.2f} MMACs ({len(result.history)} members scored); written to '
          f'{os.path.join(options["output"], "search.json")}')
    return 0
