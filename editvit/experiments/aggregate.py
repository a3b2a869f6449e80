"""Mean and spread over seeds, and whether one model's lead exceeds that spread."""
import math
import re
import statistics
from collections import defaultdict
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

GROUP_KEYS = ('dataset', 'budget', 'model')
SINK_KEYS = ('mean_sink_ratio', 'mean_max_token_ratio', 'token_sink_rate', 'cls_query_entropy_first',
             'cls_query_entropy_last')


def budget_order(tag: str) -> tuple:
    """Sort key for budget tags that reads their numbers as numbers: ...-e2 < ...-e6 < ...-e20."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r'(\d+)', tag))


def _mean_std(values: Sequence[float]) -> Tuple[float, Optional[float]]:
    """Mean and sample standard deviation (n - 1; None for a single value)."""
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None


def aggregate(rows: Iterable[Mapping[str, Any]]) -> List[Dict[str, Any]]:
    """One entry per (dataset, budget, model): n seeds, top-1 / top-5 mean and std, the mean of the sink metrics
    over the seeds that have them, params, MACs and mean training images per second."""
    groups: Dict[Tuple, List[Mapping[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[tuple(row[k] for k in GROUP_KEYS)].append(row)
    out = []
    for key, members in groups.items():
        top1_mean, top1_std = _mean_std([r['top1'] for r in members])
        top5_mean, top5_std = _mean_std([r['top5'] for r in members])
        entry = dict(zip(GROUP_KEYS, key), n=len(members), seeds=sorted(r['seed'] for r in members),
                     top1_mean=top1_mean, top1_std=top1_std, top5_mean=top5_mean, top5_std=top5_std,
                     params=members[0]['params'], macs=members[0]['macs'],
                     images_per_sec=statistics.fmean(r['images_per_sec'] for r in members))
        for k in SINK_KEYS:
            values = [r['sink'][k] for r in members if r.get('sink') and r['sink'].get(k) is not None]
            entry[k] = statistics.fmean(values) if values else None
        out.append(entry)
    return out


def compare(entries: Sequence[Mapping[str, Any]], model: str, baseline: str, dataset: str,
            budget: str) -> Optional[Dict[str, Any]]:
    """model's top-1 lead over baseline: difference of means, its standard error sqrt(s1^2/n1 + s2^2/n2), and
    whether |difference| > 2 standard errors (None when either lacks two seeds)."""
    by_model = {e['model']: e for e in entries if e['dataset'] == dataset and e['budget'] == budget}
    a, b = by_model.get(model), by_model.get(baseline)
    if a is None or b is None or a['top1_std'] is None or b['top1_std'] is None:
        return None
    diff = a['top1_mean'] - b['top1_mean']
    se = math.sqrt(a['top1_std'] ** 2 / a['n'] + b['top1_std'] ** 2 / b['n'])
    return dict(model=model, baseline=baseline, dataset=dataset, budget=budget, diff=diff, se=se,
                max_std=max(a['top1_std'], b['top1_std']), beyond_2se=abs(diff) > 2 * se)


def _pm(mean: Optional[float], std: Optional[float]) -> str:
    if mean is None:
        return 'n/a'
    return f'{mean:.2f} ± {std:.2f}' if std is not None else f'{mean:.2f}'


def _num(value: Optional[float], digits: int = 2) -> str:
    return 'n/a' if value is None else f'{value:.{digits}f}'


def format_table(entries: Sequence[Mapping[str, Any]]) -> str:
    """A Markdown table of aggregate entries, sorted by data set, budget and top-1."""
    header = ('| dataset | budget | model | n | top-1 (%) | top-5 (%) | params (k) | MMACs | train img/s | '
              '[CLS] sink ratio | max-token ratio | sink rate (> 10/N) | [CLS]-query entropy L1 -> last |')
    lines = [header, '|' + '---|' * (header.count('|') - 1)]
    for e in sorted(entries, key=lambda e: (e['dataset'], budget_order(e['budget']), -e['top1_mean'])):
        entropy = 'n/a' if e['cls_query_entropy_first'] is None else \
            f"{e['cls_query_entropy_first']:.2f} -> {e['cls_query_entropy_last']:.2f}"
        lines.append(f"| {e['dataset']} | {e['budget']} | {e['model']} | {e['n']} | "
                     f"{_pm(e['top1_mean'], e['top1_std'])} | {_pm(e['top5_mean'], e['top5_std'])} | "
                     f"{e['params'] / 1e3:.0f} | {e['macs'] / 1e6:.1f} | {e['images_per_sec']:.0f} | "
                     f"{_num(e['mean_sink_ratio'])} | {_num(e['mean_max_token_ratio'])} | "
                     f"{_num(e['token_sink_rate'])} | "
                     f"{entropy} |")
    return '\n'.join(lines) + '\n'
