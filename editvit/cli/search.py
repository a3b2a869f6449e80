"""`editvit search`: PSViT's search for token numbers and attention sharing under a MACs budget (thin over
`editvit.search.run_search`)."""
import argparse
import math
import os
from typing import Tuple

from . import UsageError


def _ints(text: str) -> Tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(','))
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected comma-separated integers, got {text!r}') from None


def _stages(text: str) -> Tuple[Tuple[int, ...], ...]:
    return tuple(_ints(stage) for stage in text.split('/'))


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        'search', help='PSViT search: token numbers and attention sharing under a MACs budget (supernet + evolution)',
        description='Train a weight-sharing PSViT supernet, then search its compact space of token numbers per stage '
                    'and sharing choices per layer pair by evolution, scoring members on a held-out training split.')
    p.add_argument('--dataset', default='cifar10', help="data set (default cifar10; 'synthetic' needs no files)")
    p.add_argument('--data-dir', default=None,
                   help='data folder: train/<class>/*.jpg (default $EDITVIT_DATA/<dataset>)')
    p.add_argument('--budget-mmacs', type=float, default=None, help='largest millions of MACs per image (default none)')
    p.add_argument('--token-choices', type=_stages, default=((64, 49), (25, 16), (9, 4)),
                   help="candidate patch tokens per stage, stages split by '/' (default 64,49/25,16/9,4)")
    p.add_argument('--depths', type=_ints, default=(2, 2, 2), help='layers per stage (default 2,2,2)')
    p.add_argument('--pooling', choices=('1d', '2d'), default='2d', help='token pooling (default 2d)')
    p.add_argument('--img-size', type=int, default=32)
    p.add_argument('--patch-size', type=int, default=4)
    p.add_argument('--embed-dim', type=int, default=64)
    p.add_argument('--num-heads', type=int, default=2)
    p.add_argument('--num-classes', type=int, default=10)
    p.add_argument('--epochs', type=int, default=5, help='supernet training epochs (default 5)')
    p.add_argument('--max-steps', type=int, default=None, help='stop supernet training after this many steps')
    p.add_argument('--batch-size', type=int, default=128)
    p.add_argument('--lr', type=float, default=1e-3)
    p.add_argument('--val-split-per-class', type=int, default=100,
                   help='training images per class held out to score members (default 100)')
    p.add_argument('--val-batches', type=int, default=None, help='score each member on at most this many batches')
    p.add_argument('--population', type=int, default=16)
    p.add_argument('--generations', type=int, default=4, help='evolution rounds (0: random search)')
    p.add_argument('--parents', type=int, default=4)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--num-workers', type=int, default=2, help='data loader worker processes')
    p.add_argument('--threads', type=int, default=None,
                   help='torch CPU threads (default: OMP_NUM_THREADS if set, else the idle cores)')
    p.add_argument('--output', default='runs/psvit_search',
                   help='run folder: the supernet run (config.yaml, checkpoint, summary.csv, training.png, weights) '
                        'and the result, search.json (default runs/psvit_search)')
    p.add_argument('--resume', action='store_true',
                   help='continue the run in --output (same options), then search; a finished search is kept, or '
                        'searched again with other --population/--generations/--parents/--val-batches')
    p.add_argument('--overwrite', action='store_true', help='replace the results of an earlier run in --output')
    p.add_argument('--checkpoint-every', type=int, default=50,
                   help='also checkpoint every N supernet updates within an epoch (0: at epoch ends; default 50)')
    p.add_argument('--no-progress', dest='progress', action='store_false', help='no progress bar')
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..search import PSViTSearchSpace, run_search

    try:
        space = PSViTSearchSpace(
            token_choices=args.token_choices, depths=args.depths, pooling=args.pooling, img_size=args.img_size,
            patch_size=args.patch_size, embed_dim=args.embed_dim, num_heads=args.num_heads,
            num_classes=args.num_classes)
        if args.budget_mmacs is not None and not 0 < args.budget_mmacs < math.inf:
            raise UsageError(f'--budget-mmacs must be a finite number of millions of MACs above 0, got '
                             f'{args.budget_mmacs}')
        budget = int(args.budget_mmacs * 1e6) if args.budget_mmacs is not None else None
        print(f'search space: {space.size} members, {space.macs(space.cheapest()) / 1e6:.2f} to '
              f'{space.macs(space.largest()) / 1e6:.2f} MMACs', flush=True)
        result = run_search(
            args.dataset, args.data_dir, space, budget_macs=budget, epochs=args.epochs, batch_size=args.batch_size,
            lr=args.lr, val_split_per_class=args.val_split_per_class, val_batches=args.val_batches,
            population=args.population, generations=args.generations, parents=args.parents, seed=args.seed,
            num_workers=args.num_workers, max_steps=args.max_steps, output=args.output, threads=args.threads,
            resume=args.resume, overwrite=args.overwrite, checkpoint_every=args.checkpoint_every,
            progress=args.progress)
    except ValueError as e:  # DataError included
        raise UsageError(str(e)) from e
    print(f'best: tokens {list(result.best.num_tokens)}, sharing layers '
          f'{[i for i, s in enumerate(result.best.share_attention) if s]}, top-1 {result.score:.2f}% on the held-out '
          f'split, {result.macs / 1e6:.2f} MMACs ({len(result.history)} members scored); written to '
          f'{os.path.join(args.output, "search.json")}')
    return 0
