"""A linear regression whose mean loss over a global batch of 8 rows trains to the same weights
on one process or split over Ray Train workers (each rank takes its share of every batch).
Here, not in a test module, so that Ray workers and child processes import it by name."""

from __future__ import annotations

import lightning as L
import torch
from torch.utils.data import DataLoader, TensorDataset


class Regression(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)
        torch.nn.init.constant_(self.layer.weight, 0.5)
        torch.nn.init.zeros_(self.layer.bias)

    def training_step(self, batch, _):
        x, y = batch
        loss = (self.layer(x).squeeze(1) - y).pow(2).mean()
        self.log("loss", loss, on_step=False, on_epoch=True, sync_dist=True)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.05)


def regression_rows() -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.randn(64, 4, generator=torch.Generator().manual_seed(0))
    return x, x @ torch.tensor([1.0, -2.0, 0.5, 3.0]) + 0.1


class GlobalBatchShares(L.LightningDataModule):
    """Global batch b is rows [8b, 8b+8); rank r of n trains on its r-th share of each."""

    def train_dataloader(self) -> DataLoader:
        world, rank = self.trainer.world_size, self.trainer.global_rank
        share = 8 // world
        rows = [row for start in range(0, 64, 8)
                for row in range(start + rank * share, start + (rank + 1) * share)]
        x, y = regression_rows()
        return DataLoader(TensorDataset(x[rows], y[rows]), batch_size=share, shuffle=False)
