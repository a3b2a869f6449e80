"""Data for training and evaluation: data sets by name, the recipe's transforms, resumable samplers, loaders, and the
tensor path for small images (decoded once, augmented a batch at a time)."""
from .augment_options import CROPS, AugmentOptions
from .datasets import DATA_ENV, DATASETS, create_dataset, resolve_root
from ..errors import DataError
from .loader import TransformedDataset, collate_drop_bad, create_loader
from .sampler import ResumableSampler, ShardSampler, create_train_sampler, sample_seed
from .tensor_loader import DATA_PATHS, TensorBatches, create_train_batches
from .transforms import create_eval_transform, create_train_transform

__all__ = ['AugmentOptions', 'CROPS', 'DATASETS', 'DATA_ENV', 'DATA_PATHS', 'DataError', 'ResumableSampler',
           'ShardSampler', 'TensorBatches', 'TransformedDataset', 'collate_drop_bad', 'create_dataset',
           'create_eval_transform', 'create_loader', 'create_train_batches', 'create_train_sampler',
           'create_train_transform', 'resolve_root', 'sample_seed']
