"""Per-layer and per-head attention-sink statistics, accumulated over batches of images and summarised as dicts.

Each image counts once: a batch adds its per-image quantities to running sums, and `summary()` divides by the
number of images, so the result does not depend on how the images were batched. Definitions are in `sink_measures`.
"""
from typing import Any, Dict, List, Optional

import torch

from . import sink_measures as M
from .massive_activations import MASSIVE_MAGNITUDE, MASSIVE_RATIO, MassiveActivations
from .maps import AttentionMaps

# Fig. 1b shows the top-left 16 x 16 block of each layer's attention matrix
BLOCK_SIZE = 16

METRIC_NAMES = (
    'cls_attention', 'other_attention', 'sink_ratio', 'max_token_attention', 'max_token_ratio', 'cls_sink_rate',
    'token_sink_rate', 'entropy', 'max_norm_ratio', 'max_norm_ratio_peak', 'high_norm_fraction', 'cls_query_to_cls',
    'cls_query_to_patches', 'cls_query_entropy', 'top_activation_ratio', 'massive_activations',
)
# per-head sink tests: Gu et al.'s on [CLS], the any-token one scaled by the token count
HEAD_TESTS = ('is_cls_sink', 'is_token_sink')
# metrics that need a [CLS] token among the self-attention keys
NEEDS_CLS_KEY = ('cls_attention', 'other_attention', 'sink_ratio', 'cls_sink_rate')
# metrics that need a [CLS] query: EDIT's decoder, or a ViT's [CLS] row
NEEDS_CLS_QUERY = ('cls_query_to_cls', 'cls_query_to_patches', 'cls_query_entropy')


class AttentionStatistics:
    """Running sums of the attention-sink measures of one model over any number of images.

    Args:
        cls_sink_epsilon: Gu et al.'s epsilon for the [CLS] sink rate.
        sink_uniform_multiple: The any-token sink rate's threshold, in multiples of the uniform share 1/N.
        high_norm_ratio: A high-norm outlier's norm over its image's median patch-token norm.
        high_norm_threshold: Darcet et al.'s absolute norm test in place of the ratio (None: the ratio).
        massive_ratio: Sun et al.'s massive activation: over this ratio to the median magnitude of the hidden state...
        massive_magnitude: ... and over this magnitude.
    """

    def __init__(self, cls_sink_epsilon: float = M.CLS_SINK_EPSILON,
                 sink_uniform_multiple: float = M.SINK_UNIFORM_MULTIPLE, high_norm_ratio: float = M.HIGH_NORM_RATIO,
                 high_norm_threshold: Optional[float] = None, massive_ratio: float = MASSIVE_RATIO,
                 massive_magnitude: float = MASSIVE_MAGNITUDE) -> None:
        self.thresholds = dict(cls_sink_epsilon=cls_sink_epsilon, sink_uniform_multiple=sink_uniform_multiple,
                               high_norm_ratio=high_norm_ratio, high_norm_threshold=high_norm_threshold,
                               massive_ratio=massive_ratio, massive_magnitude=massive_magnitude)
        self.massive = MassiveActivations(massive_ratio, massive_magnitude)
        self.num_images = 0
        self.layout: Optional[Dict[str, Any]] = None
        self._sums: Dict[str, List[torch.Tensor]] = {}
        self._peaks: Dict[str, List[torch.Tensor]] = {}

    def _add(self, name: str, layer: int, value: torch.Tensor) -> None:
        value = value.double().sum(dim=0)  # summed over the images of the batch
        sums = self._sums.setdefault(name, [None] * self.layout['num_layers'])
        sums[layer] = value if sums[layer] is None else sums[layer] + value

    def _max(self, name: str, layer: int, value: torch.Tensor) -> None:
        value = value.double().max(dim=0).values  # the largest over the images of the batch
        peaks = self._peaks.setdefault(name, [None] * self.layout['num_layers'])
        peaks[layer] = value if peaks[layer] is None else torch.maximum(peaks[layer], value)

    def update(self, maps: AttentionMaps) -> None:
        """Add a batch of images."""
        P = maps.num_prefix_tokens
        layout = dict(num_layers=maps.num_layers, num_heads=maps.num_heads, num_tokens=maps.num_tokens[0],
                      num_prefix_tokens=P, has_cls=maps.has_cls, grid_size=list(maps.grid_size),
                      cls_query=maps.cls_query_source, layer_tokens=maps.num_tokens,
                      token_grids=[list(g) if g is not None else None for g in maps.token_grids],
                      pooled=maps.is_pooled, shared=list(maps.shared))
        if self.layout is not None and layout != self.layout:
            raise ValueError(f'batches of different token layouts: {self.layout} then {layout}')
        self.layout = layout
        b = min(BLOCK_SIZE, *maps.num_tokens)
        cls_query = maps.cls_query_attention()  # per layer (B, Hq, 1+N_l_patches) or None
        for layer in range(maps.num_layers):
            A = maps.attention[layer].float()  # (B, H, N_l, N_l)
            self._add('received', layer, M.received_attention(A, P))  # (H, N_l)
            self._add('entropy', layer, M.attention_entropy(A[..., P:, :]).mean(dim=-1))  # (H,)
            patches = maps.tokens[layer][:, P:]  # (B, N_l - P, D)
            self._add('high_norm_fraction', layer, M.high_norm_fraction(
                patches, self.thresholds['high_norm_ratio'], self.thresholds['high_norm_threshold']))  # ()
            ratio = M.max_norm_ratio(patches)  # (B,)
            self._add('max_norm_ratio', layer, ratio)  # ()
            self._max('max_norm_ratio', layer, ratio)  # ()
            self.massive.update(layer, maps.tokens[layer])  # the residual stream, every token
            self._add('block', layer, A[..., :b, :b].mean(dim=1))  # (b, b) head-averaged
            if cls_query is not None:
                cq = cls_query[layer].float()  # (B, Hq, 1+N_l_patches)
                self._add('cls_query', layer, cq)  # (Hq, 1+N_l_patches)
                self._add('cls_query_entropy', layer, M.renormalised_entropy(cq[..., 1:]))  # (Hq,)
        self.num_images += maps.batch_size

    def mean(self, name: str) -> List[torch.Tensor]:
        """Per layer, the per-image average of an accumulated quantity ('received', 'entropy', 'block', ...)."""
        if self.num_images == 0:
            raise ValueError('no images were added')
        return [s / self.num_images for s in self._sums[name]]

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
        return torch.stack(self.mean('block')).float()

    def _token_name(self, layer: int, index: int) -> str:
        """'cls', 'prefix<i>', 'patch(row,col)' on the input grid, or after pooling 'pooled(row,col)' on the
        layer's grid (2D) or 'pooled(i)' (1D)."""
        P, grid = self.layout['num_prefix_tokens'], self.layout['token_grids'][layer]
        if index < P:
            if index == 0 and self.layout['has_cls']:
                return 'cls'
            return f'prefix{index}'
        kind = 'pooled' if self.layout['pooled'][layer] else 'patch'
        if grid is None:
            return f'{kind}({index - P})'
        row, col = divmod(index - P, grid[1])
        return f'{kind}({row},{col})'

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
            each row's entropy; `is_cls_sink` and `is_token_sink` are the two sink tests on that head.
          - per layer: cls_attention, other_attention, sink_ratio, max_token_attention, max_token_ratio and
            max_token from the head-averaged received attention (as Fig. 1 averages the heads), so sink_ratio is
            a ratio of means; entropy is the mean of the heads' entropies; cls_sink_rate and token_sink_rate the
            fractions of the layer's heads that pass `is_cls_sink` / `is_token_sink`; max_norm_ratio the mean over
            images of the largest patch-token norm over the median one (max_norm_ratio_peak: the largest over the
            images); high_norm_fraction the mean over images of the share of high-norm outlier patch tokens; the
            cls_query_* numbers are means over the [CLS] query's heads (EDIT: decoder heads);
            top_activation_ratio, massive_activations and massive_top describe the layer's residual stream
            (`massive_activations`).
          - model `summary`: means (and min / max where named so) of the layer values over the layers; the sink
            rates are fractions of sink heads over all layers and heads; max_norm_ratio the largest over layers and
            images.
        """
        received = self.mean('received')  # per layer (H, N_l)
        entropy = self.mean('entropy')  # per layer (H,)
        high_norm = torch.stack(self.mean('high_norm_fraction'))  # (L,)
        t = self.thresholds
        sinks = {'token_sink_rate': torch.stack([M.token_sink_heads(r, t['sink_uniform_multiple'])
                                                 for r in received]).double()}  # (L, H)
        if self.layout['has_cls']:
            sinks['cls_sink_rate'] = torch.stack([M.cls_sink_heads(r, t['cls_sink_epsilon'])
                                                  for r in received]).double()  # (L, H)
        # layer level: attention measures on the head-averaged received attention; entropy averaged over heads
        per_layer = _stack_layers([self._head_metrics(r.mean(dim=0), e.mean()) for r, e in zip(received, entropy)])
        per_layer.update({name: s.mean(dim=1) for name, s in sinks.items()})
        per_layer['max_norm_ratio'] = torch.stack(self.mean('max_norm_ratio'))  # (L,)
        per_layer['max_norm_ratio_peak'] = torch.stack(self._peaks['max_norm_ratio'])  # (L,)
        per_layer['high_norm_fraction'] = high_norm
        per_head = _stack_layers([self._head_metrics(r, e) for r, e in zip(received, entropy)])  # (L, H) each
        per_head.update({'is_' + name[:-len('_rate')]: s.bool() for name, s in sinks.items()})
        max_token = [int(r.mean(dim=0).argmax()) for r in received]
        if self.has_cls_query:
            cq = self.mean('cls_query')  # per layer (Hq, 1+N_l_patches)
            cq_metrics = dict(cls_query_to_cls=torch.stack([c[:, 0] for c in cq]),  # (L, Hq)
                              cls_query_to_patches=torch.stack([c[:, 1:].sum(dim=-1) for c in cq]),  # (L, Hq)
                              cls_query_entropy=torch.stack(self.mean('cls_query_entropy')))  # (L, Hq)
            per_layer.update({k: v.mean(dim=1) for k, v in cq_metrics.items()})

        layers: List[Dict[str, Any]] = []
        layer_tokens = self.layout['layer_tokens']
        for i in range(self.layout['num_layers']):
            layer = dict(layer=i + 1, num_tokens=layer_tokens[i], uniform_entropy=M.uniform_entropy(layer_tokens[i]),
                         attention_shared=self.layout['shared'][i])
            layer.update({k: _number(v[i]) for k, v in per_layer.items()})
            layer['max_token'] = self._token_name(i, max_token[i])
            layer.update(self.massive.layer_summary(i, lambda index: self._token_name(i, index)))
            layer['heads'] = [dict(head=h, **{k: _number(v[i, h]) for k, v in per_head.items()})
                              for h in range(self.layout['num_heads'])]
            if self.has_cls_query:
                layer['cls_query_heads'] = [dict(head=h, **{k: _number(v[i, h]) for k, v in cq_metrics.items()})
                                            for h in range(cq[i].shape[0])]
            layers.append(layer)
        return dict(
            num_images=self.num_images, **self.layout, **self.thresholds,
            # what mean_entropy would be for uniform attention: log N, or the mean of log N_l when pooling
            uniform_entropy=sum(M.uniform_entropy(n) for n in layer_tokens) / len(layer_tokens),
            not_applicable=self.applicability(),
            summary=dict(self._model_summary(per_layer, sinks),
                         max_top_activation_ratio=max(layer['top_activation_ratio'] for layer in layers),
                         layers_with_massive_activations=sum(layer['massive_activations'] > 0 for layer in layers)),
            layers=layers,
        )

    def _model_summary(self, per_layer: Dict[str, torch.Tensor], sinks: Dict[str, torch.Tensor]) -> Dict[str, Any]:
        s: Dict[str, Any] = {}
        if 'sink_ratio' in per_layer:
            ratio = per_layer['sink_ratio']
            s.update(mean_sink_ratio=_number(ratio.mean()), min_sink_ratio=_number(ratio.min()),
                     layers_with_sink_ratio_over_10=int((ratio > 10).sum()))
        s.update(
            max_token_attention=_number(per_layer['max_token_attention'].max()),
            mean_max_token_ratio=_number(per_layer['max_token_ratio'].mean()),
            **{name: _number(s.mean()) for name, s in sinks.items()},
            mean_entropy=_number(per_layer['entropy'].mean()),
            max_norm_ratio=_number(per_layer['max_norm_ratio_peak'].max()),
            mean_high_norm_fraction=_number(per_layer['high_norm_fraction'].mean()),
            layers_with_high_norm_tokens=int((per_layer['high_norm_fraction'] > 0).sum()),
        )
        if 'cls_query_entropy' in per_layer:
            e = per_layer['cls_query_entropy']
            # Fig. 5's progressive narrowing as numbers: the [CLS] query's entropy over the patches, first to last
            s.update(cls_query_entropy_first=_number(e[0]), cls_query_entropy_last=_number(e[-1]),
                     cls_query_entropy_slope=M.trend(e),
                     mean_cls_query_to_cls=_number(per_layer['cls_query_to_cls'].mean()))
        return s


def _stack_layers(per_layer: List[Dict[str, torch.Tensor]]) -> Dict[str, torch.Tensor]:
    """One dict of per-layer tensors from a list of per-layer dicts: each value stacked on a new dim 0 (L, ...)."""
    return {k: torch.stack([d[k] for d in per_layer]) for k in per_layer[0]}


def _number(x: torch.Tensor) -> Any:
    return bool(x) if x.dtype == torch.bool else float(x)
