"""DDP (2 gloo processes) against one process computing the same thing.

BatchNorm normalises each rank's shard with that shard's statistics, so a DDP step is not one
process on the global batch. The reference therefore runs each rank's shard through the supernet
separately (`Sharded`) inside one forward and takes the mean loss over the global batch, which
is the average of the ranks' losses: its gradients are the all-reduced DDP gradients.
"""
import os

import torch
from torch import nn
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler

from nas.spec.sections import load_spec
from nas.data.datasets import load_dataset
from nas.launch import launch_ddp
from nas.spec.resolve import load_space
from nas.supernet.supernet import Supernet
from nas.training.loop import CHECKPOINT, TrainConfig, train_supernet
from train_helpers import spec_dict

WORLD = 2


class Sharded(nn.Module):
    """Runs each rank's shard of a batch through the supernet on its own (per-shard BN statistics)."""

    def __init__(self, net):
        super().__init__()
        self.net, self.space = net, net.space

    def forward(self, x, arch):
        return torch.cat([self.net(shard, arch) for shard in x.chunk(WORLD)])


class RankBatches:
    """Per step: rank 0's batch then rank 1's, as the DistributedSamplers of a DDP run deal them."""

    def __init__(self, dataset, per_rank, seed):
        self.samplers = [DistributedSampler(dataset, WORLD, r, shuffle=True, seed=seed, drop_last=True)
                         for r in range(WORLD)]
        self.per_rank = per_rank

    def set_epoch(self, epoch):
        for s in self.samplers:
            s.set_epoch(epoch)

    def __len__(self):
        return len(self.samplers[0]) // self.per_rank

    def __iter__(self):
        ranks = [list(s) for s in self.samplers]
        for i in range(len(self)):
            yield [j for r in ranks for j in r[i * self.per_rank:(i + 1) * self.per_rank]]


def test_two_gloo_processes_equal_one_process_on_the_same_global_batch(tmp_path):
    spec = load_spec(spec_dict(tmp_path, epochs=1, sampler="fair"))
    result = launch_ddp(spec, WORLD, progress=False)
    assert result["world_size"] == WORLD
    ddp = torch.load(result["checkpoint"], weights_only=True)

    splits = load_dataset("digits", input_size=8, seed=0)
    torch.manual_seed(spec.seed)
    reference = Sharded(Supernet(load_space(spec, splits)))
    cfg = TrainConfig.from_spec(spec)
    loader = DataLoader(splits.train, batch_sampler=RankBatches(splits.train, cfg.batch_size // WORLD, spec.seed))
    train_supernet(reference, loader, cfg, str(tmp_path / "reference"), progress=False)

    assert ddp["step"] == len(loader) > 5
    worst = max(float((ddp["model"][name] - p.detach()).abs().max()) for name, p in reference.net.named_parameters())
    assert worst <= 1e-5
    assert os.path.basename(result["checkpoint"]) == CHECKPOINT
