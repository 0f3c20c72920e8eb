"""`NestedSubsetDataModule`: wraps a user's DataModule and serves nested subsets of its train set."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import lightning as L
import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_warn
from lightning.pytorch.utilities.model_helpers import is_overridden
from torch.utils.data import BatchSampler, DataLoader, Dataset, IterableDataset, Subset

from lightning_rectlaw.core.budget import MIN_SIZE, budget_size, check_budget, subset_sizes


class NestedSubsetDataModule(L.LightningDataModule):
    """Serve nested, deterministic subsets of a wrapped DataModule's train set.

    Subsets are prefixes of one random permutation of the train set, drawn from ``seed``: every
    smaller subset is contained in every larger one, and two candidates given the same data and
    seed see exactly the same examples. Validation and test data pass through untouched, so every
    subset is scored on the same held-out set. Outside the callback's subset runs the wrapper
    serves the full train set, so the user's normal fit still works.

    The wrapper is faithful to the wrapped datamodule: it is set up once per fit (not again for each subset
    run, so a random split drawn in ``setup`` stays put), its ``setup`` sees the Trainer, its batch-transfer
    hooks (``on_before_batch_transfer``, ``transfer_batch_to_device``, ``on_after_batch_transfer``) run on
    every batch, its attributes read through the wrapper (``trainer.datamodule.num_classes``), its state goes
    into checkpoints, and a subset loader keeps the train loader's settings (batch size, collate function,
    workers and their init function, pinning, prefetching, persistence, ``drop_last``); a batch sampler with a
    ``for_subset(indices, seed=)`` method (``SFTDataModule``'s length grouping) serves the subset itself; any
    other custom sampler or batch sampler is replaced by seeded shuffling of the subset, in batches of the
    same size.

    Args:
        datamodule: the user's ``LightningDataModule`` (must provide ``train_dataloader`` over a
            map-style dataset, batching single examples, and ``val_dataloader``).
        budget: largest subset: a fraction of the target size (``0.125``, ``"1/8"``) or an
            absolute number of examples (``> 1``); see :mod:`lightning_rectlaw.core.budget`.
        min_size: smallest subset size (default :data:`MIN_SIZE`, 16).
        target_size: the full fine-tuning set size to predict for (default: the train set length).
        seed: seed of the permutation.

    Example::

        dm = NestedSubsetDataModule(my_datamodule, budget=1/8)
        trainer = L.Trainer(max_epochs=3, callbacks=[RectifiedLawCallback()])
        trainer.fit(model, datamodule=dm)

    Raises:
        ValueError: budget above the data or below ``min_size``, a train set too small for two
            subsets, or no validation loader; TypeError: not a ``LightningDataModule``, one without
            a train set, an iterable (not indexable) train dataset, or a train loader that serves
            whole batches (``batch_size=None``). All before any training."""

    def __init__(
        self,
        datamodule: L.LightningDataModule,
        *,
        budget: float | str = "1/8",
        min_size: int = MIN_SIZE,
        target_size: int | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if not isinstance(datamodule, L.LightningDataModule):
            raise TypeError(
                f"NestedSubsetDataModule wraps a LightningDataModule, got {type(datamodule).__name__}; "
                "build one from your datasets with L.LightningDataModule.from_datasets(train_dataset="
                "..., val_dataset=..., batch_size=...)"
            )
        if not is_overridden("train_dataloader", datamodule):
            raise TypeError(
                f"{type(datamodule).__name__} has no `train_dataloader`: the wrapped "
                "datamodule must provide a train set to subsample"
            )
        check_budget(budget, min_size)
        self.datamodule, self.budget, self.target_size = datamodule, budget, target_size
        self.min_size, self.seed = int(min_size), int(seed)
        self._active_size: int | None = None
        self._train_loader: DataLoader | None = None
        self._set_up: set[str] = set()  # stages the wrapped datamodule is set up for
        self._measuring = False  # inside the callback's subset runs (see `measuring`)

    def __getattr__(self, name: str):
        """Attributes the wrapper lacks are the wrapped datamodule's (``.num_classes``, ``.tokenizer``)."""
        inner = self.__dict__.get("datamodule")
        if inner is None or name.startswith("__"):
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        return getattr(inner, name)

    # --- lifecycle -----------------------------------------------------------------------------

    def prepare_data(self) -> None:
        self.datamodule.prepare_data()

    def setup(self, stage: str) -> None:
        self.datamodule.trainer = self.trainer  # a wrapped setup (or loader) may read self.trainer
        # once per stage and fit; the fit's setup covers validation, so the monitor's check sets up nothing
        if stage not in self._set_up and not (stage == "validate" and "fit" in self._set_up):
            self.datamodule.setup(stage)
            self._set_up.add(stage)
        if stage == "fit" and self._train_loader is None:
            name = type(self.datamodule).__name__
            loader = self.datamodule.train_dataloader()
            if not isinstance(loader, DataLoader):
                raise TypeError(
                    f"{name}.train_dataloader() must return "
                    f"a torch DataLoader to be subsampled, got {type(loader).__name__}"
                )
            if isinstance(loader.dataset, IterableDataset):
                raise TypeError(
                    f"{name}.train_dataloader() serves an IterableDataset, which has no indices to "
                    "draw nested subsets from; give it a map-style dataset (with __len__ and "
                    "__getitem__), e.g. materialise the examples you would fine-tune on"
                )
            if loader.batch_size is None and loader.batch_sampler is None:
                raise TypeError(
                    f"{name}.train_dataloader() has automatic batching turned off (batch_size=None): "
                    "each item it serves is a whole batch, so the nested subsets would count batches, "
                    "not examples; serve single examples and let the DataLoader batch them "
                    "(DataLoader(dataset, batch_size=...))"
                )
            if not is_overridden("val_dataloader", self.datamodule):
                raise ValueError(
                    f"{name} has no val_dataloader: every subset is scored on the validation set, "
                    "so the wrapped datamodule must provide one"
                )
            self._train_loader = loader
            self._check_sizes()

    def teardown(self, stage: str) -> None:
        if self._measuring:  # a subset run ended; the user's fit goes on
            return
        self._set_up.discard(stage)
        self.datamodule.teardown(stage)

    @contextmanager
    def measuring(self) -> Iterator[None]:
        """The subset runs of one measurement: their Trainers' ``setup`` and ``teardown`` do not reach the
        wrapped datamodule (a re-drawn random split would score each subset on another validation set,
        overlapping the train examples already drawn)."""
        self._measuring = True
        try:
            yield
        finally:
            self._measuring = False

    # --- sizes ---------------------------------------------------------------------------------

    def _loader(self) -> DataLoader:
        """The wrapped datamodule's train loader, set up on first use."""
        if self._train_loader is None:
            self.setup("fit")
        return self._train_loader

    @property
    def train_dataset(self) -> Dataset:
        return self._loader().dataset

    @property
    def batch_size(self) -> int:
        """Batch size of the wrapped train loader (or of its batch sampler; 1 when it has none)."""
        base = self._loader()
        return base.batch_size or getattr(base.batch_sampler, "batch_size", None) or 1

    @property
    def drop_last(self) -> bool:
        """Whether the wrapped train loader drops a last, partial batch (the subsets do too)."""
        base = self._loader()
        own = base.batch_sampler if type(base.batch_sampler) is not BatchSampler else None
        return bool(base.drop_last or getattr(own, "drop_last", False))

    @property
    def full_size(self) -> int:
        return len(self.train_dataset)

    @property
    def max_size(self) -> int:
        """The budget in examples: a fraction of :attr:`target`, or a number of examples."""
        return int(math.floor(budget_size(self.budget, self.target) + 1e-9))

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
        if self.drop_last and self.sizes[-1] < self.batch_size:
            raise ValueError(
                f"the train loader drops a last partial batch (drop_last=True) of batch size "
                f"{self.batch_size}, so subsets under {self.batch_size} examples would train on "
                f"nothing (the smallest is {self.sizes[-1]}): set min_size={self.batch_size} or more, "
                "or drop_last=False"
            )
        if self.drop_last:
            short = {s: s - s % self.batch_size for s in self.sizes if s % self.batch_size > 0.1 * s}
            if short:
                rank_zero_warn(
                    f"[rectlaw] the train loader drops a last partial batch (drop_last=True): subsets "
                    f"of {list(short)} examples train on only {list(short.values())}, yet are fitted "
                    f"at their full size; use sizes that are multiples of the batch size "
                    f"{self.batch_size} (budget and min_size), or drop_last=False"
                )
        if len(self.sizes) < 2:
            raise ValueError(
                f"the train set ({n} examples) is too small for two nested subsets "
                f"between min_size={self.min_size} and the budget ({top}); lower "
                "min_size or raise the budget"
            )

    def indices(self, size: int) -> np.ndarray:
        """The first ``size`` indices of the seeded permutation (nested by construction)."""
        return np.random.default_rng(self.seed).permutation(self.full_size)[:size]

    def use_subset(self, size: int | None) -> None:
        """Serve the subset of ``size`` examples from ``train_dataloader`` (``None``: full set)."""
        self._active_size = size

    # --- loaders -------------------------------------------------------------------------------

    def train_dataloader(self) -> DataLoader:
        base = self._loader()
        if self._active_size is None:
            return base
        indices = self.indices(self._active_size).tolist()
        data = Subset(base.dataset, indices)
        workers = base.num_workers > 0
        grouped = getattr(base.batch_sampler, "for_subset", None)
        batching = (
            {"batch_sampler": grouped(indices, seed=self.seed)}
            if grouped is not None
            else {
                "batch_size": self.batch_size,
                "shuffle": True,
                "drop_last": self.drop_last,
                "generator": torch.Generator().manual_seed(self.seed),
            }
        )
        return DataLoader(
            data,
            **batching,
            collate_fn=base.collate_fn,
            num_workers=base.num_workers,
            pin_memory=base.pin_memory,
            timeout=base.timeout,
            worker_init_fn=base.worker_init_fn,
            multiprocessing_context=base.multiprocessing_context if workers else None,
            prefetch_factor=base.prefetch_factor if workers else None,
            persistent_workers=base.persistent_workers if workers else False,
            pin_memory_device=base.pin_memory_device,
        )

    def val_dataloader(self):
        return self.datamodule.val_dataloader()

    def test_dataloader(self):
        return self.datamodule.test_dataloader()

    # --- the wrapped module's own hooks and state ----------------------------------------------

    def on_before_batch_transfer(self, batch, dataloader_idx: int):
        return self.datamodule.on_before_batch_transfer(batch, dataloader_idx)

    def transfer_batch_to_device(self, batch, device, dataloader_idx: int):
        return self.datamodule.transfer_batch_to_device(batch, device, dataloader_idx)

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        return self.datamodule.on_after_batch_transfer(batch, dataloader_idx)

    def state_dict(self):
        return self.datamodule.state_dict()

    def load_state_dict(self, state_dict) -> None:
        self.datamodule.load_state_dict(state_dict)
