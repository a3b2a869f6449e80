"""The training engine: the paper's DeiT3 recipe (Sec. 4.3, Table 2) for any timm model, on one process or many.

    from editvit.train import load_config, train
    metrics = train(load_config('editvit/configs/cifar10_cpu.yaml', overrides=dict(output='runs/c10')))

One run loop (`loop.run_task`) trains every kind of model; what is trained is a `Task` (`trainer.ClassificationTask`
here, `editvit.segmentation.SegmentationTask` for Segmenter).
"""
from ..errors import ConfigError
from .config import EvalConfig, TrainConfig, from_dict, load_config, to_dict
from .checkpoint import config_for_resume
from .engine import NonFiniteLossError, evaluate, train_one_epoch
from .evaluation import evaluate_saved_classifier
from .loop import Task, run_task
from .model_setup import load_finetune_weights
from .trainer import ClassificationTask, train

__all__ = ['ClassificationTask', 'ConfigError', 'EvalConfig', 'NonFiniteLossError', 'Task', 'TrainConfig',
           'config_for_resume', 'evaluate', 'evaluate_saved_classifier', 'from_dict', 'load_config',
           'load_finetune_weights', 'run_task', 'to_dict', 'train', 'train_one_epoch']
