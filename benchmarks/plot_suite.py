"""Aggregate suite results over seeds: a Markdown table (mean ± std), each variant's top-1 lead over DeiT3 against
the seed spread, and a plot.

    .venv/bin/python benchmarks/plot_suite.py                                   # results/suite.jsonl
    .venv/bin/python benchmarks/plot_suite.py --results benchmarks/results/suite_transfer.jsonl \
        --plot benchmarks/results/suite_transfer.png
"""
import argparse
import sys
from pathlib import Path

from editvit.experiments import aggregate, compare, format_table, read_rows
from editvit.experiments.aggregate import budget_order
from editvit.experiments.plots import plot_accuracy

RESULTS = Path(__file__).parent / 'results'


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--results', type=Path, default=RESULTS / 'suite.jsonl')
    p.add_argument('--plot', type=Path, default=RESULTS / 'suite_top1.png')
    p.add_argument('--baseline', default='deit3', help='the model the others are compared with (default: deit3)')
    args = p.parse_args(argv)
    rows = read_rows(args.results)
    if not rows:
        print(f'no rows in {args.results}', file=sys.stderr)
        return 1
    entries = aggregate(rows)
    print(format_table(entries))
    print(f'Top-1 lead over {args.baseline} (difference of means ± its standard error; "yes" where |difference| > '
          f'2 standard errors):\n')
    print('| dataset | budget | model | lead (points) | largest seed std | beyond 2 SE |\n|---|---|---|---|---|---|')
    for e in sorted(entries, key=lambda e: (e['dataset'], budget_order(e['budget']), e['model'])):
        if e['model'] == args.baseline:
            continue
        c = compare(entries, e['model'], args.baseline, e['dataset'], e['budget'])
        if c is not None:
            print(f"| {c['dataset']} | {c['budget']} | {c['model']} | {c['diff']:+.2f} ± {c['se']:.2f} | "
                  f"{c['max_std']:.2f} | {'yes' if c['beyond_2se'] else 'no'} |")
    machines = sorted({(r['machine']['cpu'], ','.join(r['machine']['cpu_flags']), r['machine']['gpu'] or 'no GPU')
                       for r in rows})
    loads = [r['machine']['load_1min'] for r in rows if r['machine'].get('load_1min') is not None]
    print(f'\nmachines: {machines}; 1-min load at run start {min(loads):.1f} to {max(loads):.1f}')
    print(f'plot: {plot_accuracy(rows, entries, args.plot)}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
