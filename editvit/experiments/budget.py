"""What a run may spend: the model's size (shared by every variant, so they compare at equal width and depth) and
the training schedule. The rest of the recipe comes from the data set's CPU config (editvit/configs/*_cpu.yaml)."""
from dataclasses import asdict, dataclass
from typing import Any, Dict


@dataclass(frozen=True)
class Budget:
    """Model size and schedule of one run.

    Attributes:
        embed_dim: Token width of every variant.
        depth: Layers of every variant (EDIT: encoder layers, each with its decoder layer; CaiT: self-attention
            plus class-attention layers).
        num_heads: Attention heads.
        patch_size: Patch size; 32x32 CIFAR images with patch 4 give 64 patch tokens.
        stem: 'patch' (timm's patchify projection) or 'conv' (the convolutional stem, `models.layers.conv_stem`),
            the same for every variant.
        epochs: Passes over the training subset.
        warmup_epochs: Linear warm-up of the learning rate.
        batch_size: Images per update.
        lr: Peak learning rate of the recipe's optimiser (AdamW in the small-data recipes) at batch_size.
        analysis_images: Test images the sink analysis averages over.
    """
    embed_dim: int = 64
    depth: int = 4
    num_heads: int = 2
    patch_size: int = 4
    stem: str = 'patch'
    epochs: int = 2
    warmup_epochs: float = 0.5
    batch_size: int = 64
    lr: float = 2e-3
    analysis_images: int = 32

    def tag(self) -> str:
        """A short name for the budget, e.g. 'd64-l4-h2-p4-e2' ('d64-l4-h2-p4conv-e2' with the conv stem): rows with
        the same tag are comparable."""
        stem = '' if self.stem == 'patch' else self.stem
        return f'd{self.embed_dim}-l{self.depth}-h{self.num_heads}-p{self.patch_size}{stem}-e{self.epochs}'

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)
