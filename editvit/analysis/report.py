"""metrics.json and metrics.csv: the numbers behind the pictures, one model or two compared."""
import csv
from pathlib import Path
from typing import Any, Dict, List, Sequence

from ..strict_json import to_json
from .statistics import HEAD_TESTS, METRIC_NAMES


def metrics_document(results: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
    """The JSON document: the first model's metrics at the top level (its `layers`, `summary`, ...) and, when two
    models are compared, the second under `compare` with the same schema."""
    doc = dict(results[0])
    if len(results) > 1:
        doc['compare'] = dict(results[1])
    return doc


def metrics_rows(result: Dict[str, Any]) -> List[Dict[str, Any]]:
    """CSV rows of one model: per layer a row with head 'mean' (the layer-level numbers), then one row per head."""
    rows = []
    for layer in result['layers']:
        base = dict(model=result['model'], layer=layer['layer'])
        rows.append(dict(base, head='mean', max_token=layer['max_token'], num_tokens=layer['num_tokens'],
                         attention_shared=layer['attention_shared'],
                         **{k: layer[k] for k in METRIC_NAMES if k in layer}))
        # a ViT's [CLS] row belongs to the same head as the rest of its attention: one row per head; EDIT's
        # decoder heads are heads of their own: rows 'decoder0', ...
        merged = result['cls_query'] == 'self-attention'
        cls_query_heads = {h['head']: h for h in layer.get('cls_query_heads', [])}
        for head in layer['heads']:
            row = dict(base, head=head['head'], **{k: head[k] for k in (*METRIC_NAMES, *HEAD_TESTS) if k in head})
            if merged:
                row.update({k: v for k, v in cls_query_heads[head['head']].items() if k != 'head'})
            rows.append(row)
        if not merged:
            rows.extend(dict(base, head=f'decoder{h}', **{k: v for k, v in values.items() if k != 'head'})
                        for h, values in cls_query_heads.items())
    return rows


def write_metrics(results: Sequence[Dict[str, Any]], output_dir: Path) -> List[Path]:
    """Write output_dir/metrics.json and output_dir/metrics.csv (all models in one table, a `model` column)."""
    output_dir.mkdir(parents=True, exist_ok=True)
    json_path, csv_path = output_dir / 'metrics.json', output_dir / 'metrics.csv'
    json_path.write_text(to_json(metrics_document(results)) + '\n')
    rows = [row for result in results for row in metrics_rows(result)]
    columns = ['model', 'layer', 'head', 'num_tokens', 'attention_shared', *METRIC_NAMES, 'max_token', *HEAD_TESTS]
    columns = [c for c in columns if any(c in row for row in rows)]
    with open(csv_path, 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=columns, restval='')
        writer.writeheader()
        writer.writerows(rows)
    return [json_path, csv_path]
