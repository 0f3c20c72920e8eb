"""NestedSubsetDataModule: nested subsets, faithful to the user's datamodule, budgets."""

import lightning as L
import numpy as np
import pytest
import torch
from boring import Boring, Data, trainer_with
from torch.utils.data import DataLoader

from lightning_rectlaw import NestedSubsetDataModule, RectifiedLawCallback
from lightning_rectlaw.core.table import LossTable


def test_subsets_are_nested_deterministic_and_shared_across_candidates():
    dm = NestedSubsetDataModule(Data(), budget="1/2", min_size=32, seed=3)
    dm.setup("fit")
    assert dm.sizes == [256, 128, 64, 32]
    idx = {s: set(dm.indices(s).tolist()) for s in dm.sizes}
    assert idx[32] < idx[64] < idx[128] < idx[256]
    other = NestedSubsetDataModule(Data(), budget=256, min_size=32, seed=3)
    other.setup("fit")
    np.testing.assert_array_equal(other.indices(256), dm.indices(256))
    dm.use_subset(64)
    assert len(dm.train_dataloader().dataset) == 64
    assert len(dm.val_dataloader().dataset) == 128  # never subsampled
    dm.use_subset(None)
    assert len(dm.train_dataloader().dataset) == 512


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"budget": 4096}, "larger than the train set"),
        ({"budget": 8, "min_size": 16}, r"`min_size` \(16\) is above the budget \(8\)"),
        ({"budget": 8, "min_size": 0}, "`min_size` must be at least 1, got 0"),
        ({"budget": "1/64", "min_size": 16}, "below min_size"),
        ({"budget": 16, "min_size": 16}, "too small for two nested subsets"),
    ],
)
def test_bad_budgets(kw, match):
    with pytest.raises(ValueError, match=match):  # at construction when it can tell, else in setup
        NestedSubsetDataModule(Data(), **kw).setup("fit")


def test_datamodule_without_train_set_and_unwrapped_datamodule(tmp_path):
    class NoTrain(L.LightningDataModule):
        pass

    class Loaders:  # a DataModule by duck typing: Lightning's Trainer takes none either
        def train_dataloader(self):
            return Data().train_dataloader()

    with pytest.raises(TypeError, match="has no `train_dataloader`"):
        NestedSubsetDataModule(NoTrain())
    with pytest.raises(TypeError, match=r"wraps a LightningDataModule, got Loaders.*from_datasets"):
        NestedSubsetDataModule(Loaders())
    with pytest.raises(TypeError, match="NestedSubsetDataModule"):
        trainer_with(tmp_path, RectifiedLawCallback()).fit(Boring(), datamodule=Data())


class Faithful(Data):
    """A user datamodule that relies on what Lightning gives it: the trainer in setup, its
    batch-transfer hooks, and a batch sampler."""

    def setup(self, stage):
        self.max_epochs_seen = self.trainer.max_epochs  # fails if the wrapper hides the trainer

    def train_dataloader(self):
        sampler = torch.utils.data.BatchSampler(
            torch.utils.data.RandomSampler(self.train), 32, drop_last=False
        )
        return DataLoader(self.train, batch_sampler=sampler)

    def on_after_batch_transfer(self, batch, dataloader_idx):
        x, y = batch
        return x, y + 100.0  # a target shift only this hook knows about


class SeesTargets(Boring):
    def training_step(self, batch, i):
        self.mean_target = float(batch[1].mean())
        return super().training_step(batch, i)


def test_the_wrapper_is_faithful_to_the_users_datamodule(tmp_path):
    data, model = Faithful(), SeesTargets()
    law = RectifiedLawCallback()
    trainer_with(tmp_path, law).fit(model, datamodule=NestedSubsetDataModule(data, budget=128, min_size=32))
    assert law.result.status == "ok"
    assert data.max_epochs_seen == 2  # the wrapped setup saw the trainer
    assert model.mean_target > 50  # the wrapped on_after_batch_transfer ran on subset batches
    assert min(law.result.losses) > 100  # and on validation batches (about 0.1 without the hook)


def test_subset_loaders_keep_the_users_loader_settings():
    def init_fn(worker_id):
        return None

    class Workers(Data):
        def train_dataloader(self):
            return DataLoader(
                self.train,
                batch_size=16,
                shuffle=True,
                num_workers=2,
                persistent_workers=True,
                prefetch_factor=3,
                worker_init_fn=init_fn,
                drop_last=True,
            )

    dm = NestedSubsetDataModule(Workers(), budget=128, min_size=32)
    dm.setup("fit")
    dm.use_subset(64)
    loader = dm.train_dataloader()
    assert len(loader.dataset) == 64 and loader.batch_size == 16 and loader.drop_last
    assert loader.num_workers == 2 and loader.persistent_workers and loader.prefetch_factor == 3
    assert loader.worker_init_fn is init_fn


def test_iterable_datasets_and_missing_validation_loaders_fail_before_training(tmp_path):
    class Stream(torch.utils.data.IterableDataset):
        def __iter__(self):
            yield from (torch.zeros(8), torch.zeros(()))

    class Streaming(Data):
        def train_dataloader(self):
            return DataLoader(Stream(), batch_size=4)

    class NoValidation(L.LightningDataModule):
        def __init__(self):
            super().__init__()
            self.inner = Data()

        def train_dataloader(self):
            return self.inner.train_dataloader()

    class Prebatched(Data):  # each item a batch of 8: a subset would count batches
        def train_dataloader(self):
            x, y = self.train.tensors
            return DataLoader(list(zip(x.split(8), y.split(8), strict=True)), batch_size=None)

    model = Boring()
    with pytest.raises(TypeError, match=r"automatic batching turned off \(batch_size=None\).*count batches"):
        trainer_with(tmp_path, RectifiedLawCallback()).fit(
            model, datamodule=NestedSubsetDataModule(Prebatched(), budget=32, min_size=4)
        )
    with pytest.raises(TypeError, match="serves an IterableDataset.*map-style dataset"):
        trainer_with(tmp_path, RectifiedLawCallback()).fit(
            model, datamodule=NestedSubsetDataModule(Streaming())
        )
    with pytest.raises(ValueError, match="NoValidation has no val_dataloader"):
        trainer_with(tmp_path, RectifiedLawCallback()).fit(
            model, datamodule=NestedSubsetDataModule(NoValidation())
        )
    assert model.starts == []  # nothing trained


def test_a_budget_ratio_is_a_fraction_of_the_target_size_everywhere():
    dm = NestedSubsetDataModule(Data(2048), budget="1/8", min_size=16, target_size=1024)
    dm.setup("fit")
    assert dm.max_size == 128  # 1024 / 8: the target, as in LossTable.resolve_budget and the paper
    table = LossTable.from_csv_text("config name,64,128,256,512,1024\na,5,4,3,2,1\n")
    assert table.resolve_budget("1/8", target=1024) == dm.max_size
    assert NestedSubsetDataModule(Data(2048), budget="1/8", min_size=16).max_size == 256  # target: all 2048


class _DropLast(Data):
    def train_dataloader(self):
        return DataLoader(self.train, batch_size=64, shuffle=True, drop_last=True)


def test_drop_last_subsets_that_would_train_on_nothing_or_less_are_caught(tmp_path):
    model = Boring()
    with pytest.raises(ValueError, match=r"subsets under 64 examples would train on nothing.*min_size=64"):
        trainer_with(tmp_path, RectifiedLawCallback()).fit(
            model, datamodule=NestedSubsetDataModule(_DropLast(), budget=256, min_size=16)
        )
    assert model.starts == []
    dm = NestedSubsetDataModule(_DropLast(), budget=400, min_size=64)  # 400, 200, 100
    with pytest.warns(UserWarning, match=r"subsets of \[100\] examples train on only \[64\]"):
        dm.setup("fit")
    dm.use_subset(100)
    assert dm.train_dataloader().drop_last and len(dm.train_dataloader()) == 1


class _UnseededSplit(L.LightningDataModule):
    """The tutorial pattern: a random train/validation split drawn anew in every ``setup``."""

    def __init__(self):
        super().__init__()
        self.full = Data(n=512).train
        self.setups, self.teardowns, self.val_seen = 0, 0, set()

    def setup(self, stage):
        self.setups += 1
        self.train, self.val = torch.utils.data.random_split(self.full, [384, 128])

    def teardown(self, stage):
        self.teardowns += 1

    def train_dataloader(self):
        return DataLoader(self.train, batch_size=32, shuffle=True)

    def val_dataloader(self):
        self.val_seen.add(tuple(self.val.indices))
        return DataLoader(self.val, batch_size=64)


def test_the_wrapped_datamodule_is_set_up_once_per_fit_not_per_subset_run(tmp_path):
    data = _UnseededSplit()
    law = RectifiedLawCallback(schedule="all", zero_shot=True)
    trainer_with(tmp_path, law).fit(
        Boring(), datamodule=NestedSubsetDataModule(data, budget=128, min_size=32)
    )
    assert law.result.status == "ok" and len(law.result.sizes) == 3
    assert data.setups == 1 and len(data.val_seen) == 1  # every subset scored on one validation set
    assert data.teardowns == 1  # at the end of the user's fit, not after each subset run


def test_a_module_reads_the_wrapped_datamodules_attributes_through_the_trainer(tmp_path):
    class Described(Data):
        n_features = 8

    class ReadsData(Boring):
        def setup(self, stage):  # e.g. num_classes or the tokenizer, read at setup
            self.width = self.trainer.datamodule.n_features

    model, law = ReadsData(), RectifiedLawCallback(schedule="all")
    trainer_with(tmp_path, law).fit(
        model, datamodule=NestedSubsetDataModule(Described(), budget=128, min_size=32)
    )
    assert model.width == 8 and law.result.status == "ok"
    with pytest.raises(AttributeError, match="no attribute 'missing'"):
        NestedSubsetDataModule(Described()).missing  # noqa: B018
