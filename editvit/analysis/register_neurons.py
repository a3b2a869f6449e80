"""Register neurons and test-time registers: moving a ViT's high-norm outliers onto an extra token, without training.

Jiang, Dravid, Efros and Gandelsman, "Vision Transformers Don't Need Trained Registers" (NeurIPS 2025). A sparse
set of MLP neurons ("register neurons") writes the large activations that turn a few patch tokens into Darcet et
al.'s high-norm outliers. Their recipe, followed here (their Sec. 3-4 and their released code):

  1. outlier positions: per image, the patch tokens that are high-norm outliers at a detection layer (the last by
     default). The outlier test is `sink_measures.high_norm_tokens` (norm over 4x the image's median, or Darcet's
     absolute norm) where their code takes a fixed norm;
  2. score of neuron n in layer l: the magnitude of its activation a_l[:, n] (the MLP's hidden unit after the
     non-linearity), averaged over the image's outlier positions, then over the images that have outliers;
  3. register neurons: the top-k (layer, neuron) pairs by score, over all layers up to the detection layer;
  4. test-time registers: R extra tokens, zero at the input, join the sequence. In every layer, each register
     neuron's activation on the registers is set to its largest activation over all the image's tokens, and its
     activation on every patch token to 0 ([CLS] and trained registers keep theirs):

         a_l[reg, n] = max_t a_l[t, n]        a_l[patch, n] = 0        for (l, n) in the register neurons

     so the large activations build up on the registers instead of on patches.

Each neuron also gets its `concentration`: its mean activation magnitude on the outlier tokens over the mean on all
patch tokens (1: no preference; a register neuron fires far more on the outliers).

The extra tokens go right after [CLS] and any trained registers, where timm keeps register tokens, and count as
prefix tokens: their place in the sequence changes nothing (attention does not see order once the position
embedding is added) and the analysis then treats them as registers. The intervention needs a timm
VisionTransformer (its `_pos_embed` makes the sequence); the neurons are found in editvit models too.
"""
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from ..errors import ConfigError
from . import sink_measures as M
from .analyze import analyze_model
from .extract import attention_blocks, extract_attention
from .images import NamedImage, images_to_batch
from .maps import AttentionMaps

NUM_REGISTER_NEURONS = 10


@dataclass
class RegisterNeuron:
    """One MLP hidden unit: its layer (0-based block index), index, score and concentration (see module docstring)."""
    layer: int
    neuron: int
    score: float
    concentration: float


@dataclass
class RegisterNeurons:
    """What `find_register_neurons` found.

    Attributes:
        neurons: The top-k neurons by score, highest first; empty when no image had an outlier token.
        outlier_layer: The detection layer (0-based).
        num_images: Images seen.
        images_with_outliers: Images with at least one outlier token at the detection layer.
        outlier_tokens: Outlier tokens per image at the detection layer, averaged over all images.
    """
    neurons: List[RegisterNeuron]
    outlier_layer: int
    num_images: int
    images_with_outliers: int
    outlier_tokens: float

    def by_layer(self) -> Dict[int, List[int]]:
        """Layer -> its register neurons' indices."""
        out: Dict[int, List[int]] = {}
        for n in self.neurons:
            out.setdefault(n.layer, []).append(n.neuron)
        return out

    def as_dict(self) -> Dict[str, Any]:
        d = asdict(self)
        d['neurons'] = [dict(n, layer=n['layer'] + 1) for n in d['neurons']]  # layers numbered from 1, as in `layers`
        d['outlier_layer'] += 1
        return d


def mlp_activation_modules(model: nn.Module) -> List[nn.Module]:
    """Per block, the module whose output is the MLP's hidden activation (timm `Mlp.act`), or ConfigError."""
    modules = []
    for i, block in enumerate(attention_blocks(model)):
        act = getattr(getattr(block, 'mlp', None), 'act', None)
        if not isinstance(act, nn.Module) or not hasattr(block.mlp, 'fc1'):
            raise ConfigError(f'block {i} of {type(model).__name__} has no timm Mlp (fc1, act, fc2): register neurons '
                              f'are read from the hidden activation of such an MLP')
        modules.append(act)
    return modules


def _record_activations(model: nn.Module, x: torch.Tensor) -> Tuple[AttentionMaps, List[torch.Tensor]]:
    """One pass: the attention maps and tokens (`extract_attention`) and every block's MLP activation (B, N, H)."""
    acts: List[torch.Tensor] = []
    handles = [m.register_forward_hook(lambda mod, args, out: acts.append(out)) for m in mlp_activation_modules(model)]
    try:
        maps = extract_attention(model, x)
    finally:
        for h in handles:
            h.remove()
    if len(acts) != maps.num_layers:
        raise ConfigError(f'{type(model).__name__}: saw {len(acts)} MLP activations for {maps.num_layers} layers')
    return maps, acts


def find_register_neurons(
        model: nn.Module,
        batches: Iterable[torch.Tensor],
        top_k: int = NUM_REGISTER_NEURONS,
        outlier_layer: int = -1,
        high_norm_ratio: float = M.HIGH_NORM_RATIO,
        high_norm_threshold: Optional[float] = None,
) -> RegisterNeurons:
    """Jiang et al.'s register neurons of model on batches of images (B, C, H, W): see the module docstring.

    Args:
        top_k: How many (layer, neuron) pairs to return.
        outlier_layer: The layer whose output tokens define the outliers (negative: from the end).
        high_norm_ratio, high_norm_threshold: The outlier test (`sink_measures.high_norm_tokens`).
    """
    # per (layer, neuron), summed over the images with outliers: mean |a| on the outliers, mean |a| on all patches
    score_sum: Optional[torch.Tensor] = None  # (L, H)
    patch_sum: Optional[torch.Tensor] = None  # (L, H)
    num_images = with_outliers = 0
    outlier_count, layer = 0.0, None
    for x in batches:
        maps, acts = _record_activations(model, x)
        P = maps.num_prefix_tokens
        L = maps.num_layers
        layer = outlier_layer % L
        if any(a.shape[1] != acts[0].shape[1] for a in acts):
            raise ConfigError('register neurons need the same tokens in every layer (no token pooling)')
        flags = M.high_norm_tokens(maps.tokens[layer][:, P:], high_norm_ratio, high_norm_threshold)  # (B, N - P)
        num_images += x.shape[0]
        outlier_count += float(flags.sum())
        for b in range(x.shape[0]):
            if not flags[b].any():
                continue
            with_outliers += 1
            a = torch.stack([act[b, P:] for act in acts]).abs().double()  # (L, N - P, H) on the patch tokens
            on_outliers = a[:, flags[b]].mean(dim=1)  # (L, H)
            on_patches = a.mean(dim=1)  # (L, H)
            score_sum = on_outliers if score_sum is None else score_sum + on_outliers
            patch_sum = on_patches if patch_sum is None else patch_sum + on_patches
    if layer is None:
        raise ValueError('no images to find register neurons on')
    neurons: List[RegisterNeuron] = []
    if score_sum is not None:
        scores = score_sum[:layer + 1] / with_outliers  # (l + 1, H) layers up to the detection layer
        concentration = score_sum[:layer + 1] / patch_sum[:layer + 1].clamp_min(1e-12)  # (l + 1, H)
        H = scores.shape[1]
        values, index = scores.flatten().topk(min(top_k, scores.numel()))
        neurons = [RegisterNeuron(int(i) // H, int(i) % H, float(v), float(concentration.flatten()[i]))
                   for v, i in zip(values, index)]
    return RegisterNeurons(neurons=neurons, outlier_layer=layer, num_images=num_images,
                           images_with_outliers=with_outliers, outlier_tokens=outlier_count / max(num_images, 1))


def check_test_time_registers(model: nn.Module) -> None:
    """ConfigError unless `with_test_time_registers` can run on model (a timm VisionTransformer with timm MLPs)."""
    if not hasattr(model, '_pos_embed') or not hasattr(model, 'num_prefix_tokens') or \
            hasattr(model, 'forward_with_intermediates'):
        raise ConfigError(f'test-time registers join the token sequence of a timm VisionTransformer (its _pos_embed); '
                          f'{type(model).__name__} has none')
    mlp_activation_modules(model)


def _shift_to_registers(start: int, count: int, neurons: torch.Tensor):
    """Forward hook on an MLP activation (B, N, H): the register neurons' largest activation over all tokens goes to
    the registers (tokens start..start+count-1), and their activation on the patch tokens after them becomes 0."""
    def hook(module: nn.Module, args: tuple, out: torch.Tensor) -> torch.Tensor:
        out = out.clone()
        peak = out[:, :, neurons].amax(dim=1, keepdim=True)  # (B, 1, k)
        out[:, start:start + count, neurons] = peak.expand(-1, count, -1)  # (B, count, k)
        out[:, start + count:, neurons] = 0
        return out
    return hook


@contextmanager
def with_test_time_registers(model: nn.Module, neurons: RegisterNeurons, num_registers: int = 1) -> Iterator[nn.Module]:
    """Run a timm ViT with `num_registers` test-time registers fed by `neurons` while the context is open.

    On exit the model is exactly as before (hooks removed, `_pos_embed` and `num_prefix_tokens` restored).
    """
    if num_registers < 1:
        raise ConfigError(f'the number of test-time registers must be at least 1, got {num_registers}')
    check_test_time_registers(model)
    modules = mlp_activation_modules(model)
    P = model.num_prefix_tokens  # [CLS] and trained registers
    embed = model._pos_embed

    def embed_with_registers(x: torch.Tensor) -> torch.Tensor:
        x = embed(x)  # (B, P + N, D)
        registers = x.new_zeros(x.shape[0], num_registers, x.shape[2])  # (B, R, D)
        return torch.cat([x[:, :P], registers, x[:, P:]], dim=1)  # (B, P + R + N, D)

    handles = [modules[layer].register_forward_hook(
        _shift_to_registers(P, num_registers, torch.tensor(indices, dtype=torch.long)))
        for layer, indices in neurons.by_layer().items()]
    model._pos_embed = embed_with_registers  # the instance attribute shadows the method
    model.num_prefix_tokens += num_registers
    try:
        yield model
    finally:
        for handle in handles:
            handle.remove()
        del model._pos_embed
        model.num_prefix_tokens -= num_registers


# the per-layer numbers kept for the model with test-time registers, beside the full metrics of the model without
AFTER_LAYER_KEYS = ('layer', 'num_tokens', 'sink_ratio', 'max_token_ratio', 'max_token', 'cls_sink_rate',
                    'token_sink_rate', 'max_norm_ratio', 'high_norm_fraction', 'top_activation_ratio')


def measure_test_time_registers(model: nn.Module, images: Sequence[NamedImage], num_registers: int = 1,
                                top_k: int = NUM_REGISTER_NEURONS, batch_size: int = 16,
                                high_norm_ratio: float = M.HIGH_NORM_RATIO, high_norm_threshold: Optional[float] = None,
                                **analysis_kwargs) -> Dict[str, Any]:
    """Find model's register neurons on images, add `num_registers` test-time registers and measure again.

    Returns the register neurons (`RegisterNeurons.as_dict`, layers numbered from 1), `num_registers` and `after`:
    the summary and the main per-layer numbers (AFTER_LAYER_KEYS) of `analyze_model` with the registers, to set
    beside the metrics of the model without them. With no outlier token there are no register neurons, and `after`
    shows the effect of the extra zero token(s) alone. high_norm_ratio / high_norm_threshold: the outlier test, for
    both the search and the measures; analysis_kwargs go to `analyze_model`.
    """
    check_test_time_registers(model)
    batches = (images_to_batch(images[i:i + batch_size], model) for i in range(0, len(images), batch_size))
    found = find_register_neurons(model, batches, top_k=top_k, high_norm_ratio=high_norm_ratio,
                                  high_norm_threshold=high_norm_threshold)
    with with_test_time_registers(model, found, num_registers):
        after = analyze_model(model, images, batch_size=batch_size, high_norm_ratio=high_norm_ratio,
                              high_norm_threshold=high_norm_threshold, **analysis_kwargs).metrics
    return dict(num_registers=num_registers, **found.as_dict(), after=dict(
        num_prefix_tokens=after['num_prefix_tokens'], summary=after['summary'],
        layers=[{k: layer[k] for k in AFTER_LAYER_KEYS if k in layer} for layer in after['layers']]))
