"""The tiny "boring" model and data the plugin tests share (imported by the test modules)."""

import lightning as L
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from torch.utils.data import DataLoader, TensorDataset


class Data(L.LightningDataModule):
    def __init__(self, n=512, scale=1.0, batch_size=32):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        x = torch.randn(n + 128, 8, generator=g)
        y = scale * (x @ torch.linspace(-1, 1, 8) + 0.3 * torch.randn(n + 128, generator=g))
        self.train, self.val = TensorDataset(x[:n], y[:n]), TensorDataset(x[n:], y[n:])
        self.batch_size = batch_size

    def train_dataloader(self):
        return DataLoader(self.train, batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self):
        return DataLoader(self.val, batch_size=64)


class Boring(L.LightningModule):
    """Records, at the start of every training run, its weights and optimizer identity."""

    def __init__(self, key="val_loss", diverge_below=None, blow_up_at=None):
        super().__init__()
        torch.manual_seed(0)
        self.layer = torch.nn.Linear(8, 1)
        self.key, self.diverge_below, self.blow_up_at = key, diverge_below, blow_up_at
        self.starts, self.optimizers_seen = [], []

    def training_step(self, batch, _):
        x, y = batch
        return torch.nn.functional.mse_loss(self.layer(x).squeeze(-1), y)

    def on_train_start(self):
        self.starts.append(self.layer.weight.detach().clone())
        self.optimizers_seen.append(id(self.trainer.optimizers[0]))

    def validation_step(self, batch, _):
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.layer(x).squeeze(-1), y) + 0.05
        n = len(self.trainer.datamodule.train_dataloader().dataset) if self.trainer.datamodule else 0
        if self.diverge_below is not None and 0 < n < self.diverge_below:
            loss = loss * float("nan")
        if n == self.blow_up_at:  # a run that diverged but stayed finite
            loss = loss * 1e21
        self.log(self.key, loss)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.05)


def trainer_with(tmp_path, cb, **kw):
    return L.Trainer(
        max_epochs=kw.pop("max_epochs", 2),
        callbacks=[cb, *kw.pop("extra", [])],
        enable_progress_bar=False,
        logger=TensorBoardLogger(tmp_path / "tb"),
        enable_model_summary=False,
        **kw,
    )
