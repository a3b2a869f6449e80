"""The training engine: the paper's DeiT3 recipe (Sec. 4.3, Table 2) for any timm model, on one process or many.

    from editvit.train import load_config, train
    metrics = train(load_config('editvit/configs/cifar10_cpu.yaml', overrides=dict(output='runs/c10')))
"""
from ..errors import ConfigError
from .config import EvalConfig, TrainConfig, from_dict, load_config, to_dict
from .engine import NonFiniteLossError, evaluate, train_one_epoch
from .evaluation import evaluate_checkpoint
from .models import load_finetune_weights
from .trainer import config_for_resume, train

__all__ = ['ConfigError', 'EvalConfig', 'NonFiniteLossError', 'TrainConfig', 'config_for_resume',
           'evaluate', 'evaluate_checkpoint', 'from_dict', 'load_config', 'load_finetune_weights', 'to_dict', 'train',
           'train_one_epoch']
