"""Semantic segmentation on EDIT and other ViT backbones: Segmenter's Mask Transformer (Strudel et al. 2021), as in
the paper's Table 5 (Sec. 4.6.2).

    from editvit.segmentation import create_segmenter, segment
    model = create_segmenter('edit_small_patch16_224', num_classes=150, img_size=512,
                             backbone_weights='edit_small_in1k.safetensors')
    probs = segment(model.eval(), images, window=512, stride=512)                  # (B, 150, H, W)
"""
from .config import SegEvalConfig, SegTrainConfig
from .data import SEG_DATASETS, create_segmentation_dataset, create_segmentation_loader
from .evaluation import evaluate_saved_segmenter, evaluate_segmentation
from .inference import MULTI_SCALE_RATIOS, segment, sliding_window_logits
from .loss import SegmentationCrossEntropy
from .mask_transformer import LinearDecoder, MaskTransformer
from .metrics import IGNORE_INDEX, IoUAccumulator, iou_table, segmentation_metrics
from .pictures import comparison, overlay, save_predictions
from .segmenter import DECODERS, Segmenter, create_segmenter
from .pasted import PastedObjects
from .synthetic import SyntheticSegmentation
from .trainer import SegmentationTask, train_segmentation
from .transforms import SegmentationEvalTransform, SegmentationTrainTransform

__all__ = ['DECODERS', 'IGNORE_INDEX', 'IoUAccumulator', 'LinearDecoder', 'MULTI_SCALE_RATIOS', 'MaskTransformer',
           'PastedObjects', 'SEG_DATASETS', 'SegEvalConfig', 'SegTrainConfig', 'Segmenter', 'SegmentationCrossEntropy',
           'SegmentationEvalTransform', 'SegmentationTask', 'SegmentationTrainTransform', 'SyntheticSegmentation',
           'comparison', 'create_segmentation_dataset', 'create_segmentation_loader', 'create_segmenter',
           'evaluate_saved_segmenter', 'evaluate_segmentation', 'iou_table', 'overlay', 'save_predictions', 'segment',
           'segmentation_metrics', 'sliding_window_logits', 'train_segmentation']
