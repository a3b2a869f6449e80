"""Taking [CLS] out of a trained ViT at test time: the question EDIT's design raises, asked of any timm ViT.

    with cls_removed(model, 'mask'):   # [CLS] stays in the sequence but no query may attend to it
        maps = extract_attention(model, x)
    with cls_removed(model, 'drop'):   # [CLS] is not in the sequence at all (registers, if any, stay)
        maps = extract_attention(model, x)

'mask' adds a bias of -inf on key 0 in every block (timm's `Block` takes an `attn_mask`), so each row's softmax
renormalises over the other keys: the attention that went to [CLS] goes wherever the model sends it next. 'drop'
removes the [CLS] slot right after the position embedding, so the encoder sees the patch tokens (and register
tokens) with their own position embeddings, as EDIT's encoder does. Nothing is trained: the weights are the
model's. In 'drop' mode the classifier head reads token 0, now a patch or register, so logits mean nothing; the
tokens and attention maps are what to study. On exit the model is exactly as before.
"""
from contextlib import contextmanager
from typing import Iterator, Literal

import torch
import torch.nn as nn
from timm.models.vision_transformer import Block

from ..errors import ConfigError

Removal = Literal['mask', 'drop']


def check_removable(model: nn.Module, mode: str) -> None:
    """ConfigError unless `cls_removed(model, mode)` can run: a known mode, [CLS] in the sequence, timm blocks."""
    if mode not in ('mask', 'drop'):
        raise ConfigError(f"unknown [CLS] removal {mode!r}: use 'mask' or 'drop'")
    if getattr(model, 'cls_token', None) is None or not hasattr(model, '_pos_embed'):
        raise ConfigError(f'{type(model).__name__} has no [CLS] token in its self-attention to remove (a timm '
                          f'VisionTransformer with class_token=True has one)')
    if not all(isinstance(block, Block) for block in model.blocks):
        raise ConfigError(f'{type(model).__name__} has blocks other than timm Block; removing [CLS] needs blocks '
                          f'that take an attention mask')


def _mask_cls_key(block: nn.Module, args: tuple, kwargs: dict) -> tuple:
    x = args[0]  # (B, N, D), [CLS] at 0
    bias = torch.zeros(x.shape[1], x.shape[1], dtype=x.dtype, device=x.device)  # (N, N), rows = queries
    bias[:, 0] = float('-inf')
    return args, {**kwargs, 'attn_mask': bias}


@contextmanager
def cls_removed(model: nn.Module, mode: Removal) -> Iterator[nn.Module]:
    """Run `model` without [CLS] while the context is open (see the module docstring).

    Raises:
        ConfigError: the model has no [CLS] in its self-attention, its blocks take no mask, or mode is unknown.
    """
    check_removable(model, mode)
    if mode == 'mask':
        handles = [block.register_forward_pre_hook(_mask_cls_key, with_kwargs=True) for block in model.blocks]
        try:
            yield model
        finally:
            for handle in handles:
                handle.remove()
        return
    embed = model._pos_embed

    def embed_without_cls(x: torch.Tensor) -> torch.Tensor:
        return embed(x)[:, 1:]  # (B, 1+R+N, D) -> (B, R+N, D)

    model._pos_embed = embed_without_cls  # the instance attribute shadows the method
    model.num_prefix_tokens -= 1
    had_class_token = getattr(model, 'has_class_token', True)
    model.has_class_token = False  # token 0 is now a register or a patch
    try:
        yield model
    finally:
        del model._pos_embed
        model.num_prefix_tokens += 1
        model.has_class_token = had_class_token
