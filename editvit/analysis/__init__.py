"""Attention-sink analysis (paper Fig. 1) and sequential attention maps (paper Fig. 5) for EDIT, PSViT and timm ViTs.

    from editvit.analysis import run_analysis
    run_analysis('edit_small_patch16_224', 'out/', checkpoint='edit_s.safetensors', compare='deit3_small_patch16_224')

or, step by step: `editvit.create_model`, `load_images`, `analyze_model` (metrics, blocks, maps), `write_metrics`,
`plot_*`.
"""
from .analyze import ModelAnalysis, analyze_model
from .cls_removal import cls_removed
from .extract import UnsupportedModelError, extract_attention, talking_heads_attention
from .maps import AttentionMaps
from .images import load_images, sample_images
from .massive_activations import MassiveActivations
from .register_neurons import find_register_neurons, measure_test_time_registers, with_test_time_registers
from .report import write_metrics
from .rollout import cls_rollout, self_attention_rollout
from .run import run_analysis
from .sequential import sequential_attention_maps
from .statistics import AttentionStatistics

__all__ = [
    'AttentionMaps', 'AttentionStatistics', 'MassiveActivations', 'ModelAnalysis',
    'UnsupportedModelError', 'analyze_model', 'cls_removed', 'cls_rollout', 'extract_attention',
    'find_register_neurons', 'load_images', 'measure_test_time_registers', 'plot_blocks', 'plot_sequential_maps',
    'plot_sink', 'run_analysis', 'sample_images', 'self_attention_rollout', 'sequential_attention_maps',
    'talking_heads_attention', 'with_test_time_registers', 'write_metrics',
]

_PLOTS = ('plot_blocks', 'plot_sequential_maps', 'plot_sink')


def __getattr__(name: str):
    """The plotting functions, imported on first use: they need matplotlib (the `plots` extra), the rest does not."""
    if name in _PLOTS:
        from . import plots
        return getattr(plots, name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
