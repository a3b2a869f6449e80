"""The run loop with a task of one's own: the loop trains whatever a `Task` builds, and writes the run folder."""
import json

import torch
import torch.nn as nn
from timm.scheduler import CosineLRScheduler

from editvit.data import ShardSampler, create_dataset, create_eval_transform, create_loader, create_train_sampler
from editvit.train import Task, TrainConfig, evaluate, run_task
from editvit.train.distributed import DistEnv


class LinearProbe(Task):
    """A linear classifier on the synthetic set's 8x8 pixels: the smallest task the loop can train."""

    def create_model(self, env, resumed):
        self.train_set = create_dataset('synthetic', None, 'train', num_classes=4, image_size=8, synthetic_samples=64)
        self.val_set = create_dataset('synthetic', None, 'val', num_classes=4, image_size=8)
        return nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 4))

    def create_loader(self, model, env):
        transform = create_eval_transform((8, 8), (0.5,) * 3, (0.5,) * 3)
        sampler = create_train_sampler(self.train_set, self.cfg.seed, env.rank, env.world_size)
        self.val_loader = create_loader(self.val_set, transform, ShardSampler(len(self.val_set)), 16)
        return sampler, create_loader(self.train_set, transform, sampler, self.cfg.batch_size, drop_last=True)

    def create_optimizer(self, model, global_batch, updates_per_epoch):
        optimizer = torch.optim.SGD(model.parameters(), lr=self.cfg.lr)
        return optimizer, CosineLRScheduler(optimizer, t_initial=self.cfg.epochs * updates_per_epoch,
                                            t_in_epochs=False)

    def create_loss(self):
        return nn.CrossEntropyLoss(), None  # no Mixup

    def describe(self):
        return 'a linear probe'

    def evaluate(self, model, ema, env, epoch):
        return {'val_top1': evaluate(model, self.val_loader, env)['top1']}

    def final_metrics(self, model, env, history):
        return {'val_top1': history[-1]['val_top1']}


def test_a_task_of_ones_own_trains_through_the_run_loop(tmp_path, one_thread):
    cfg = TrainConfig(model='linear', dataset='synthetic', output=str(tmp_path), epochs=2, batch_size=8,
                      global_batch_size=16, lr=0.1, progress=False)
    metrics = run_task(LinearProbe(cfg), DistEnv())
    assert metrics['updates'] == 2 * 64 // 16 and metrics['global_batch'] == 16 and metrics['lr'] == 0.1
    assert metrics['num_params'] == 3 * 8 * 8 * 4 + 4 and metrics['val_top1'] > 50  # chance: 25
    assert json.loads((tmp_path / 'metrics.json').read_text()) == metrics
    rows = (tmp_path / 'summary.csv').read_text().splitlines()
    assert rows[0] == 'epoch,train_loss,lr,val_top1,images_per_sec,epoch_seconds,bad_images,threads,load' \
        and len(rows) == 3
    assert 'training a linear probe | 0.00M parameters' in (tmp_path / 'log.txt').read_text()
    assert (tmp_path / 'model.safetensors').is_file() and (tmp_path / 'checkpoint-last.pth').is_file()
