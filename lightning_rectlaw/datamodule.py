"""`NestedSubsetDataModule`: wraps a user's DataModule and serves nested subsets of its train set."""

from __future__ import annotations

import math

import lightning as L
import numpy as np
from lightning.pytorch.utilities.model_helpers import is_overridden
from torch.utils.data import DataLoader, Dataset, Subset

from lightning_rectlaw.table import parse_budget

__all__ = ["NestedSubsetDataModule", "subset_sizes"]


def subset_sizes(max_size: int, min_size: int) -> list[int]:
    """``max_size, max_size/2, max_size/4, ...`` (rounded down) while ``>= min_size``."""
    sizes, s = [], float(max_size)
    while math.floor(s) >= min_size:
        sizes.append(int(math.floor(s)))
        s /= 2
    return sizes


class NestedSubsetDataModule(L.LightningDataModule):
    """Serve nested, deterministic subsets of a wrapped DataModule's train set.

    Subsets are prefixes of one random permutation of the train set, drawn from ``seed``: every
    smaller subset is contained in every larger one, and two candidates given the same data and
    seed see exactly the same examples. Validation and test data pass through untouched, so every
    subset is scored on the same held-out set. Outside the callback's subset runs the wrapper
    serves the full train set, so the user's normal fit still works.

    Args:
        datamodule: the user's DataModule (must provide ``train_dataloader``).
        budget: largest subset: a fraction of the full train set (``0.125``, ``"1/8"``) or an
            absolute number of examples (``> 1``). Default ``"1/8"``.
        min_size: smallest subset size (default 16).
        target_size: the full fine-tuning set size to predict for (default: the train set length).
        seed: seed of the permutation (default 0).

    Example::

        dm = NestedSubsetDataModule(my_datamodule, budget=1/8)
        trainer = L.Trainer(callbacks=[RectifiedLawCallback()])
        trainer.fit(model, datamodule=dm)

    Raises:
        ValueError: budget above the data or below ``min_size``, or a train set too small for two
            subsets; TypeError: a datamodule without a train set.
    """

    def __init__(
        self,
        datamodule: L.LightningDataModule,
        budget: float | str = "1/8",
        min_size: int = 16,
        target_size: int | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if not callable(getattr(datamodule, "train_dataloader", None)) or (
            isinstance(datamodule, L.LightningDataModule)
            and not is_overridden("train_dataloader", datamodule)
        ):
            raise TypeError(
                f"{type(datamodule).__name__} has no `train_dataloader`: the wrapped "
                "datamodule must provide a train set to subsample"
            )
        if min_size < 1:
            raise ValueError(f"`min_size` must be at least 1, got {min_size}")
        self.datamodule = datamodule
        self.budget = budget
        self.min_size = int(min_size)
        self.target_size = target_size
        self.seed = int(seed)
        self._active_size: int | None = None
        self._train_loader: DataLoader | None = None
        parse_budget(budget)  # fail fast on a malformed budget

    # --- lifecycle -----------------------------------------------------------------------------

    def prepare_data(self) -> None:
        self.datamodule.prepare_data()

    def setup(self, stage: str) -> None:
        self.datamodule.setup(stage)
        if stage == "fit" and self._train_loader is None:
            loader = self.datamodule.train_dataloader()
            if not isinstance(loader, DataLoader):
                raise TypeError(
                    f"{type(self.datamodule).__name__}.train_dataloader() must return "
                    f"a torch DataLoader to be subsampled, got {type(loader).__name__}"
                )
            self._train_loader = loader
            self._check_sizes()

    def teardown(self, stage: str) -> None:
        self.datamodule.teardown(stage)

    # --- sizes ---------------------------------------------------------------------------------

    @property
    def train_dataset(self) -> Dataset:
        if self._train_loader is None:
            self.setup("fit")
        return self._train_loader.dataset

    @property
    def batch_size(self) -> int:
        """Batch size of the wrapped train loader (1 when it has none)."""
        self.train_dataset  # noqa: B018 - sets up the wrapped loader on first use
        return self._train_loader.batch_size or 1

    @property
    def full_size(self) -> int:
        return len(self.train_dataset)

    @property
    def max_size(self) -> int:
        value = parse_budget(self.budget)
        return int(math.floor(value * self.full_size)) if value <= 1 else int(value)

    @property
    def sizes(self) -> list[int]:
        """Subset sizes, largest first."""
        return subset_sizes(self.max_size, self.min_size)

    @property
    def target(self) -> int:
        return int(self.target_size) if self.target_size is not None else self.full_size

    def _check_sizes(self) -> None:
        n, top = self.full_size, self.max_size
        if top > n:
            raise ValueError(
                f"budget {self.budget!r} ({top} examples) is larger than the train set "
                f"({n} examples); use a budget <= {n} or a fraction like '1/8'"
            )
        if top < self.min_size:
            raise ValueError(
                f"budget {self.budget!r} ({top} examples) is below min_size="
                f"{self.min_size}; raise the budget or lower min_size"
            )
        if len(self.sizes) < 2:
            raise ValueError(
                f"the train set ({n} examples) is too small for two nested subsets "
                f"between min_size={self.min_size} and the budget ({top}); lower "
                "min_size or raise the budget"
            )

    def indices(self, size: int) -> np.ndarray:
        """The first ``size`` indices of the seeded permutation (nested by construction)."""
        perm = np.random.default_rng(self.seed).permutation(self.full_size)
        return perm[:size]

    def use_subset(self, size: int | None) -> None:
        """Serve the subset of ``size`` examples from ``train_dataloader`` (``None``: full set)."""
        self._active_size = size

    # --- loaders -------------------------------------------------------------------------------

    def train_dataloader(self) -> DataLoader:
        if self._train_loader is None:
            self.setup("fit")
        base = self._train_loader
        if self._active_size is None:
            return base
        import torch

        data = Subset(base.dataset, self.indices(self._active_size).tolist())
        return DataLoader(
            data,
            batch_size=base.batch_size,
            shuffle=True,
            collate_fn=base.collate_fn,
            num_workers=base.num_workers,
            pin_memory=base.pin_memory,
            drop_last=False,
            generator=torch.Generator().manual_seed(self.seed),
        )

    def val_dataloader(self):
        return self.datamodule.val_dataloader()

    def test_dataloader(self):
        return self.datamodule.test_dataloader()
