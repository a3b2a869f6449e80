"""Per-layer and per-head attention-sink statistics, accumulated over batches of images and summarised as dicts.

Each image counts once: a batch adds its per-image quantities to running sums, and `summary()` divides by the
number of images, so the result does not depend on how the images were batched. Definitions are in `metrics`.
"""
from typing import Any, Dict, List, Optional

import torch

from . import metrics as M
from .extract import AttentionMaps

# Fig. 1b shows the top-left 16 x 16 block of each layer's attention matrix
BLOCK_SIZE = 16

METRIC_NAMES = (
    'cls_attention', 'other_attention', 'sink_ratio', 'max_token_attention', 'max_token_ratio', 'sink_rate',
    'entropy', 'high_norm_fraction', 'cls_query_to_cls', 'cls_query_to_patches', 'cls_query_entropy',
)
# metrics that need a [CLS] token among the self-attention keys
NEEDS_CLS_KEY = ('cls_attention', 'other_attention', 'sink_ratio')
# metrics that need a [CLS] query: EDIT's decoder, or a ViT's [CLS] row
NEEDS_CLS_QUERY = ('cls_query_to_cls', 'cls_query_to_patches', 'cls_query_entropy')


class AttentionStatistics:
    """Running sums of the attention-sink measures of one model over any number of images.

    Args:
        sink_threshold: Gu et al.'s epsilon for the sink rate.
    """

    def __init__(self, sink_threshold: float = M.SINK_THRESHOLD) -> None:
        self.sink_threshold = sink_threshold
        self.num_images = 0
        self.layout: Optional[Dict[str, Any]] = None
        self._sums: Dict[str, torch.Tensor] = {}

    def _add(self, name: str, value: torch.Tensor) -> None:
        value = value.double().sum(dim=0)  # summed over the images of the batch
        self._sums[name] = self._sums[name] + value if name in self._sums else value

    def update(self, maps: AttentionMaps) -> None:
        """Add a batch of images."""
        P = maps.num_prefix_tokens
        layout = dict(num_layers=maps.num_layers, num_heads=maps.num_heads, num_tokens=maps.attention.shape[-1],
                      num_prefix_tokens=P, has_cls=maps.has_cls, grid_size=list(maps.grid_size),
                      cls_query=maps.cls_query_source)
        if self.layout is not None and layout != self.layout:
            raise ValueError(f'batches of different token layouts: {self.layout} then {layout}')
        self.layout = layout
        A = maps.attention.float()  # (B, L, H, N, N)
        self._add('received', M.received_attention(A, P))  # (L, H, N)
        self._add('entropy', M.attention_entropy(A[..., P:, :]).mean(dim=-1))  # (L, H)
        self._add('high_norm_fraction', M.high_norm_fraction(maps.tokens[:, :, P:]))  # (L,)
        b = min(BLOCK_SIZE, A.shape[-1])
        self._add('block', A[..., :b, :b].mean(dim=2))  # (L, b, b) head-averaged
        cls_query = maps.cls_query_attention()  # (B, L, Hq, 1+Np) or None
        if cls_query is not None:
            self._add('cls_query', cls_query.float())  # (L, Hq, 1+Np)
            self._add('cls_query_entropy', M.renormalised_entropy(cls_query[..., 1:].float()))  # (L, Hq)
        self.num_images += maps.attention.shape[0]

    def mean(self, name: str) -> torch.Tensor:
        """The per-image average of an accumulated quantity ('received', 'entropy', 'block', ...)."""
        if self.num_images == 0:
            raise ValueError('no images were added')
        return self._sums[name] / self.num_images

    @property
    def has_cls_query(self) -> bool:
        return 'cls_query' in self._sums

    def applicability(self) -> Dict[str, str]:
        """Metric name -> why it does not apply to this model, for the metrics that do not."""
        missing = {}
        if not self.layout['has_cls']:
            for name in NEEDS_CLS_KEY:
                missing[name] = 'no [CLS] token among the self-attention keys'
        if not self.has_cls_query:
            for name in NEEDS_CLS_QUERY:
                missing[name] = 'no [CLS] query (neither a decoder nor a [CLS] row in the self-attention)'
        return missing

    def block(self) -> torch.Tensor:
        """Fig. 1b: the top-left 16 x 16 block of every layer's attention, averaged over heads and images (L, b, b)."""
        return self.mean('block').float()

    def _token_name(self, index: int) -> str:
        P, (h, w) = self.layout['num_prefix_tokens'], self.layout['grid_size']
        if index < P:
            if index == 0 and self.layout['has_cls']:
                return 'cls'
            return f'prefix{index}'
        row, col = divmod(index - P, w)
        return f'patch({row},{col})'

    def _head_metrics(self, received: torch.Tensor, entropy: torch.Tensor) -> Dict[str, Any]:
        """Metrics of one set of received-attention vectors (..., N) and entropies (...), as nested lists."""
        out: Dict[str, Any] = {}
        if self.layout['has_cls']:
            cls, other = M.cls_and_other_attention(received)
            out.update(cls_attention=cls, other_attention=other, sink_ratio=M.sink_ratio(cls, other))
        out.update(max_token_attention=received.max(dim=-1).values, max_token_ratio=M.max_token_ratio(received),
                   entropy=entropy)
        return out

    def summary(self) -> Dict[str, Any]:
        """Per-layer dicts (layer-level numbers plus a `heads` list) and model-level summaries.

        What is averaged over what (definitions in `metrics`):
          - per head: every measure is taken on that head's attention averaged over the images and the patch
            queries (the mean attention each key receives); entropy is the mean over images and patch queries of
            each row's entropy; `is_sink` is Gu et al.'s test on that head.
          - per layer: cls_attention, other_attention, sink_ratio, max_token_attention, max_token_ratio and
            max_token from the head-averaged received attention (as Fig. 1 averages the heads), so sink_ratio is
            a ratio of means; entropy is the mean of the heads' entropies; sink_rate the fraction of sink heads;
            high_norm_fraction the mean over images of the share of outlier-norm patch tokens; the cls_query_*
            numbers are means over the [CLS] query's heads (EDIT: decoder heads).
          - model `summary`: means (and min / max where named so) of the layer values over the layers; sink_rate
            is the fraction of sink heads over all layers and heads.
        """
        received = self.mean('received')  # (L, H, N)
        entropy = self.mean('entropy')  # (L, H)
        high_norm = self.mean('high_norm_fraction')  # (L,)
        sinks = M.sink_heads(received, self.sink_threshold).double()  # (L, H)
        # layer level: attention measures on the head-averaged received attention; entropy averaged over heads
        per_layer = self._head_metrics(received.mean(dim=1), entropy.mean(dim=1))
        per_layer['sink_rate'] = sinks.mean(dim=1)
        per_layer['high_norm_fraction'] = high_norm
        per_head = self._head_metrics(received, entropy)
        per_head['is_sink'] = sinks.bool()
        max_token = received.mean(dim=1).argmax(dim=-1)  # (L,)
        if self.has_cls_query:
            cq = self.mean('cls_query')  # (L, Hq, 1+Np)
            cq_entropy = self.mean('cls_query_entropy')  # (L, Hq)
            cq_metrics = dict(cls_query_to_cls=cq[..., 0], cls_query_to_patches=cq[..., 1:].sum(dim=-1),
                              cls_query_entropy=cq_entropy)
            per_layer.update({k: v.mean(dim=1) for k, v in cq_metrics.items()})

        layers: List[Dict[str, Any]] = []
        for i in range(self.layout['num_layers']):
            layer = dict(layer=i + 1)
            layer.update({k: _number(v[i]) for k, v in per_layer.items()})
            layer['max_token'] = self._token_name(int(max_token[i]))
            layer['heads'] = [dict(head=h, **{k: _number(v[i, h]) for k, v in per_head.items()})
                              for h in range(self.layout['num_heads'])]
            if self.has_cls_query:
                layer['cls_query_heads'] = [dict(head=h, **{k: _number(v[i, h]) for k, v in cq_metrics.items()})
                                            for h in range(cq.shape[1])]
            layers.append(layer)
        return dict(
            num_images=self.num_images, **self.layout, sink_threshold=self.sink_threshold,
            uniform_entropy=M.uniform_entropy(self.layout['num_tokens']),
            not_applicable=self.applicability(),
            summary=self._model_summary(per_layer, sinks),
            layers=layers,
        )

    def _model_summary(self, per_layer: Dict[str, torch.Tensor], sinks: torch.Tensor) -> Dict[str, Any]:
        s: Dict[str, Any] = {}
        if 'sink_ratio' in per_layer:
            ratio = per_layer['sink_ratio']
            s.update(mean_sink_ratio=_number(ratio.mean()), min_sink_ratio=_number(ratio.min()),
                     layers_with_sink_ratio_over_10=int((ratio > 10).sum()))
        s.update(
            max_token_attention=_number(per_layer['max_token_attention'].max()),
            mean_max_token_ratio=_number(per_layer['max_token_ratio'].mean()),
            sink_rate=_number(sinks.mean()),
            mean_entropy=_number(per_layer['entropy'].mean()),
            mean_high_norm_fraction=_number(per_layer['high_norm_fraction'].mean()),
        )
        if 'cls_query_entropy' in per_layer:
            e = per_layer['cls_query_entropy']
            # Fig. 5's progressive narrowing as numbers: the [CLS] query's entropy over the patches, first to last
            s.update(cls_query_entropy_first=_number(e[0]), cls_query_entropy_last=_number(e[-1]),
                     cls_query_entropy_slope=M.trend(e),
                     mean_cls_query_to_cls=_number(per_layer['cls_query_to_cls'].mean()))
        return s


def _number(x: torch.Tensor) -> Any:
    return bool(x) if x.dtype == torch.bool else float(x)
