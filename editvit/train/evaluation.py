"""`evaluate_saved_classifier(config)`: top-1, top-5, loss and throughput of saved weights on a data set."""
from pathlib import Path
from typing import Any, Dict

import timm
import torch

from ..data import ShardSampler, create_eval_transform, create_loader
from ..errors import ConfigError
from ..models.factory import create_model
from ..threads import one_minute_load
from ..weights import load_model_weights
from . import distributed as D
from .config import EvalConfig
from .engine import evaluate
from .model_setup import input_size
from .records import write_json
from .trainer import classification_datasets


def evaluate_saved_classifier(cfg: EvalConfig) -> Dict[str, Any]:
    """Evaluate cfg.checkpoint (a .safetensors file, timm weights or an editvit training checkpoint, adapted by the
    model's checkpoint filter) on cfg.split of cfg.dataset; returns the metrics (written to cfg.output if set).

    A config loaded with `run` (load_config(overrides={'run': DIR}, cls=EvalConfig)) evaluates the run's final
    weights exactly as its training evaluated them."""
    return D.run_distributed(_evaluate, cfg)


def check_output_file(path: Path) -> None:
    """ConfigError, before any work, for a metrics file that cannot be written where asked."""
    if path.is_dir():
        raise ConfigError(f'output {str(path)!r} is a folder; give a file name such as {str(path / "metrics.json")!r}')
    parent = next((p for p in path.parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise ConfigError(f'output {str(path)!r} lies under {str(parent)!r}, a file; choose another --output')


def _evaluate(cfg: EvalConfig, env: D.DistEnv) -> Dict[str, Any]:
    if cfg.output:
        check_output_file(Path(cfg.output))
    data, num_classes = classification_datasets(cfg, cfg.split)
    model = create_model(cfg.model, num_classes, cfg.model_kwargs, layer_scale_init=cfg.layer_scale_init)
    load_model_weights(model, cfg.checkpoint)
    model.to(env.device)
    data_cfg = timm.data.resolve_model_data_config(model)
    transform = create_eval_transform(input_size(model), data_cfg['mean'], data_cfg['std'],
                                      crop_ratio=cfg.eval_crop_ratio, interpolation=data_cfg['interpolation'])
    loader = create_loader(data, transform, ShardSampler(len(data), env.rank, env.world_size), cfg.batch_size,
                           cfg.num_workers, pin_memory=env.device.type == 'cuda')
    metrics = {'model': cfg.model, 'checkpoint': str(cfg.checkpoint), 'dataset': cfg.dataset, 'split': cfg.split,
               **evaluate(model, loader, env, cfg.amp), 'threads': torch.get_num_threads(),
               'load': one_minute_load()}
    if cfg.output and env.is_main:
        write_json(Path(cfg.output), metrics)
    return metrics
