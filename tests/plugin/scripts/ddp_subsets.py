"""Run the callback under 2-process CPU DDP (launched by Lightning); used by tests/plugin/test_callback.py.

Usage: python ddp_subsets.py OUT_DIR
"""

import json
import sys
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader, TensorDataset

from lightning_rectlaw import NestedSubsetDataModule, RectifiedLawCallback


class Data(L.LightningDataModule):
    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        x = torch.randn(640, 8, generator=g)
        y = x @ torch.linspace(-1, 1, 8) + 0.3 * torch.randn(640, generator=g)
        self.train, self.val = TensorDataset(x[:512], y[:512]), TensorDataset(x[512:], y[512:])

    def train_dataloader(self):
        return DataLoader(self.train, batch_size=16, shuffle=True)

    def val_dataloader(self):
        return DataLoader(self.val, batch_size=32)


class Model(L.LightningModule):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.layer = torch.nn.Linear(8, 1)
        self.train_batches = 0

    def training_step(self, batch, _):
        x, y = batch
        self.train_batches += 1
        return torch.nn.functional.mse_loss(self.layer(x).squeeze(-1), y)

    def validation_step(self, batch, _):
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.layer(x).squeeze(-1), y)
        self.log("val_loss", loss, sync_dist=True)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.05)


if __name__ == "__main__":
    out = Path(sys.argv[1])
    law = RectifiedLawCallback(schedule="all", zero_shot=True, results_dir=out / "res")
    trainer = L.Trainer(
        accelerator="cpu",
        devices=2,
        strategy="ddp",
        max_epochs=2,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[law],
        default_root_dir=out,
    )
    model = Model()
    trainer.fit(model, datamodule=NestedSubsetDataModule(Data(), budget=256, min_size=64))
    report = {
        "rank": trainer.global_rank,
        "sizes": law.result.sizes,
        "losses": law.result.losses,
        "status": law.result.status,
        "train_batches": model.train_batches,  # this rank's share of the subset runs
        "global_step": trainer.global_step,
    }
    (out / f"rank{trainer.global_rank}.json").write_text(json.dumps(report))
    # Leave the process group cleanly, as PyTorch asks, so neither rank exits while gloo's
    # threads still run (that can abort the process at interpreter exit).
    trainer.strategy.barrier()
    torch.distributed.destroy_process_group()
