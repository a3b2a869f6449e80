"""Attention-sink analysis (paper Fig. 1) and sequential attention maps (paper Fig. 5) for EDIT and timm ViTs."""
from .extract import AttentionMaps, UnsupportedModelError, attention_probabilities, extract_attention
from .statistics import AttentionStatistics
