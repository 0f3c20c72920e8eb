"""RectifiedLawCallback on CPU with a tiny boring model: schedules, results, errors, DDP."""

import json
import logging
import warnings

import numpy as np
import pytest
import torch
from boring import Boring, Data, trainer_with
from lightning.pytorch.callbacks import Callback, EarlyStopping, LearningRateMonitor, ModelCheckpoint
from torch.utils.data import DataLoader, TensorDataset

from lightning_rectlaw import NestedSubsetDataModule, RectifiedLawCallback


def test_callback_runs_every_subset_from_identical_weights_with_fresh_optimizers(tmp_path):
    model = Boring()
    initial = model.layer.weight.detach().clone()
    law = RectifiedLawCallback(schedule="all", zero_shot=True)
    trainer = trainer_with(tmp_path, law)
    trainer.fit(model, datamodule=NestedSubsetDataModule(Data(), budget="1/2", min_size=32))
    r = law.result
    assert r.sizes == [256, 128, 64, 32] and len(r.losses) == 4 and r.zero_shot_loss is not None
    assert all(torch.equal(w, initial) for w in model.starts)
    assert len(set(model.optimizers_seen)) == len(model.optimizers_seen) == 4
    assert torch.equal(model.layer.weight, initial)  # the user's model is left at its pretrained weights
    assert trainer.global_step == 0  # by default the full-data fit is skipped
    assert r.status == "ok" and r.predicted_loss > 0 and r.target_size == 512
    assert r.examples_processed == 2 * (256 + 128 + 64 + 32)
    saved = json.loads((tmp_path / "tb" / "lightning_logs" / "version_0" / "rectlaw_result.json").read_text())
    assert saved["predicted_loss"] == pytest.approx(r.predicted_loss)


def test_continue_fit_trains_on_full_data_and_user_callbacks_fire(tmp_path):
    fired = []

    class Probe(Callback):
        def on_train_epoch_end(self, trainer, pl_module):
            fired.append(trainer.current_epoch)

    ckpt = ModelCheckpoint(dirpath=tmp_path / "ckpt", monitor="val_loss")
    extra = [ckpt, EarlyStopping("val_loss", patience=5), LearningRateMonitor(), Probe()]
    model = Boring()
    law = RectifiedLawCallback(schedule="all", continue_fit=True)
    trainer = trainer_with(tmp_path, law, extra=extra)
    with pytest.warns(UserWarning, match=r"train without your Trainer's callback\(s\) Probe"):
        trainer.fit(model, datamodule=NestedSubsetDataModule(Data(), budget=128, min_size=32))
    assert fired == [0, 1]  # only the user's own fit: Probe is not given to the subset runs
    assert trainer.global_step == 2 * 16  # 512 examples / 32 per batch, 2 epochs
    assert ckpt.best_model_path and len(list((tmp_path / "ckpt").glob("*.ckpt"))) == 1
    assert len(law.result.sizes) == 3


def test_tensorboard_has_subset_runs_scalars_and_figure(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    law = RectifiedLawCallback(schedule="all")
    trainer = trainer_with(tmp_path, law)
    trainer.fit(Boring(), datamodule=NestedSubsetDataModule(Data(), budget="1/2", min_size=32))
    ea = EventAccumulator(trainer.logger.log_dir, size_guidance={"images": 0, "scalars": 0})
    ea.Reload()
    steps = [e.step for e in ea.Scalars("rectlaw/test_loss_vs_subset_size")]
    assert sorted(steps) == [32, 64, 128, 256]
    assert "rectlaw/fit" in ea.Tags()["images"]
    sub_runs = sorted(p.name for p in (tmp_path / "tb/lightning_logs/version_0/subsets").iterdir())
    assert sub_runs == ["size_128", "size_256", "size_32", "size_64"]


def test_ats_schedule_stops_at_the_phase_transition(tmp_path):
    class Flat(Boring):
        def validation_step(self, batch, _):
            n = len(self.trainer.datamodule.train_dataloader().dataset)
            wiggle = 1 + 0.002 * (-1) ** int(np.log2(n))
            loss = (2.0 * n**-0.3 if n >= 64 else 2.0 * 64**-0.3) * wiggle
            self.log("val_loss", torch.tensor(loss))

    law = RectifiedLawCallback(schedule="ats")
    trainer_with(tmp_path, law).fit(
        Flat(), datamodule=NestedSubsetDataModule(Data(2048), budget=1024, min_size=8)
    )
    assert law.result.sizes[-1] == 32  # 1024 .. 64 accepted, 32 rejected: nothing smaller was run


def test_max_steps_runs_count_the_examples_they_process(tmp_path):
    law = RectifiedLawCallback(schedule="all")
    trainer = trainer_with(tmp_path, law, max_steps=6)  # 6 batches of 32 = 192 examples per subset
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=r".*before the subsets")  # every subset is seen whole
        trainer.fit(Boring(), datamodule=NestedSubsetDataModule(Data(), budget=128, min_size=32))
    assert trainer.datamodule.batch_size == 32
    # ceil(192 / size) passes over each subset: 2 × 128, 3 × 64, 6 × 32
    assert law.result.examples_processed == 2 * 128 + 3 * 64 + 6 * 32


@pytest.mark.parametrize(
    ("cap", "match"),
    [
        (
            {"max_steps": 2},
            r"max_steps=2 stops training after 64 examples, before the subsets of 128 examples",
        ),
        (
            {"limit_train_batches": 1},
            r"limit_train_batches=1 stops training after 32 examples, .* of 128, 64 examples",
        ),
    ],
)
def test_a_cap_that_stops_the_larger_subsets_short_of_one_pass_is_named(tmp_path, cap, match):
    """A debugging cap (a few steps or batches) makes the larger subsets train on as many
    examples as a smaller one: the curve is flat for a reason that is not the data."""
    law = RectifiedLawCallback(schedule="all")
    with pytest.warns(UserWarning, match=match):
        trainer_with(tmp_path, law, **cap).fit(
            Boring(), datamodule=NestedSubsetDataModule(Data(), budget=128, min_size=32)
        )
    assert law.result.sizes == [128, 64, 32]  # a warning, not a refusal: the run still goes through


def test_a_diverged_but_finite_run_is_left_out_and_reported(tmp_path):
    law = RectifiedLawCallback(zero_shot=True)  # the default method, robust_ats
    with pytest.warns(UserWarning, match="left out of the ranking as bad runs"):
        trainer_with(tmp_path, law).fit(
            Boring(blow_up_at=128), datamodule=NestedSubsetDataModule(Data(2048), budget=1024, min_size=16)
        )
    r = law.result
    assert r.method == "robust_ats" and r.status == "ok"
    assert 128 in r.sizes and list(r.outliers) == [128] and "diverged" in r.outliers[128]
    assert r.predicted_loss < 1.0  # the 1e21 run steers nothing
    # the side fits and the drawn curve use the clean points only; the prediction ends the curve
    assert r.law is not None and r.law["B"] < 1e6
    assert r.prediction_curve["losses"][-1] == pytest.approx(r.predicted_loss)
    assert r.prediction_curve["sizes"][-1] == r.target_size


def test_a_curve_without_enough_clean_points_is_not_ok(tmp_path):
    law = RectifiedLawCallback(zero_shot=True)
    with pytest.warns(UserWarning, match="left out of the ranking"):
        trainer_with(tmp_path, law).fit(
            Boring(blow_up_at=64), datamodule=NestedSubsetDataModule(Data(2048), budget=256, min_size=64)
        )
    assert law.result.status.startswith("no prediction: AtS needs k=3 points")
    assert "bad run" in law.result.status and law.result.predicted_loss is None


def test_pooled_schedule_runs_only_the_subsets_it_needs(tmp_path):
    law = RectifiedLawCallback(method="pooled", holdouts=2)  # schedule "auto": k + holdouts sizes
    trainer_with(tmp_path, law).fit(
        Boring(), datamodule=NestedSubsetDataModule(Data(2048), budget=1024, min_size=8)
    )
    assert law.result.method == "pooled" and law.result.status == "ok"
    assert law.result.sizes == [1024, 512, 256, 128, 64]
    lo, hi = law.result.interval  # two hold-outs: a bounded interval around the prediction
    assert lo < law.result.predicted_loss < hi


@pytest.mark.slow
def test_ddp_subset_runs_share_the_work_and_agree(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).parent / "scripts" / "ddp_subsets.py"
    for attempt in ("first", "resumed"):
        proc = subprocess.run(
            [sys.executable, str(script), str(tmp_path)], capture_output=True, text=True, timeout=600
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        r0, r1 = (json.loads((tmp_path / f"rank{i}.json").read_text()) for i in (0, 1))
        assert r0["status"] == r1["status"] == "ok"
        assert r0["sizes"] == r1["sizes"] == [256, 128, 64] and r0["losses"] == r1["losses"]
        assert r0["global_step"] == 0  # the user's own fit was stopped after the subset runs
        if attempt == "first":
            # each rank trains on half of every subset: (256 + 128 + 64) / 2 / 16 per epoch, 2 epochs
            assert r0["train_batches"] == r1["train_batches"] == 28
        else:
            assert r0["train_batches"] == r1["train_batches"] == 0  # all reused from rank 0's cache
    assert json.loads((tmp_path / "res" / "rectlaw_result.json").read_text())["sizes"] == [256, 128, 64]


def test_unsupported_multi_device_strategies_are_refused_with_the_fix():
    from types import SimpleNamespace

    from lightning.pytorch.strategies import DDPStrategy

    from lightning_rectlaw.plugin.checks import check_strategy

    spawned = DDPStrategy(start_method="spawn")
    spawned.cluster_environment = SimpleNamespace(creates_processes_externally=False)
    for strategy, match in ((object(), "not object"), (spawned, "with spawned processes")):
        with pytest.raises(ValueError, match=rf"{match}.*use strategy='ddp'"):
            check_strategy(SimpleNamespace(world_size=2, strategy=strategy))
    check_strategy(SimpleNamespace(world_size=1, strategy=object()))  # single device: fine


def test_min_epochs_and_min_steps_do_not_defeat_the_stop(tmp_path):
    law = RectifiedLawCallback()
    trainer = trainer_with(tmp_path, law, min_epochs=3, min_steps=50)
    trainer.fit(Boring(), datamodule=NestedSubsetDataModule(Data(), budget=128, min_size=32))
    assert law.result.status == "ok" and trainer.global_step == 0  # the user's fit did not train


def test_continue_fit_trains_exactly_as_without_the_callback(tmp_path):
    torch.manual_seed(7)
    plain = Boring()
    trainer_with(tmp_path / "a", RectifiedLawCallback.__base__()).fit(
        plain, datamodule=NestedSubsetDataModule(Data(), budget=128, min_size=32)
    )
    torch.manual_seed(7)
    measured = Boring()
    law = RectifiedLawCallback(continue_fit=True)
    trainer_with(tmp_path / "b", law).fit(
        measured, datamodule=NestedSubsetDataModule(Data(), budget=128, min_size=32)
    )
    assert law.result.status == "ok"
    assert torch.equal(plain.layer.weight, measured.layer.weight)


def test_diverged_run_is_recorded_and_excluded(tmp_path):
    law = RectifiedLawCallback(schedule="all")
    with pytest.warns(UserWarning, match="diverged"):
        trainer_with(tmp_path, law).fit(
            Boring(diverge_below=50), datamodule=NestedSubsetDataModule(Data(), budget=256, min_size=16)
        )
    assert set(law.result.failed) == {32, 16}
    assert law.result.sizes == [256, 128, 64] and law.result.status == "ok"


def test_monitored_key_never_logged(tmp_path):
    law = RectifiedLawCallback(schedule="all")
    with pytest.raises(ValueError, match="'val_loss' was never logged.*'other'"):
        trainer_with(tmp_path, law).fit(
            Boring(key="other"), datamodule=NestedSubsetDataModule(Data(), budget=128, min_size=32)
        )


def test_a_fit_given_dataloaders_is_shown_the_line_that_builds_a_datamodule(tmp_path):
    data = Data()
    law = RectifiedLawCallback()
    with pytest.raises(TypeError, match=r"dataloaders.*LightningDataModule\.from_datasets\(train_loader"):
        trainer_with(tmp_path, law).fit(
            Boring(), train_dataloaders=data.train_dataloader(), val_dataloaders=data.val_dataloader()
        )


def test_a_monitor_typo_fails_before_any_training(tmp_path):
    """Without the zero-shot loss the monitor used to be read first after the largest subset."""
    law = RectifiedLawCallback(schedule="all", zero_shot=False, monitor="val/loss")
    model = Boring()
    with pytest.raises(ValueError, match=r"'val/loss' was never logged.*'val_loss'"):
        trainer_with(tmp_path, law).fit(
            model, datamodule=NestedSubsetDataModule(Data(), budget=128, min_size=32)
        )
    assert model.starts == []  # no subset run began training


def test_a_loss_logged_per_validation_batch_only_gets_the_fix(tmp_path):
    class PerBatch(Boring):
        def validation_step(self, batch, _):
            x, y = batch
            loss = torch.nn.functional.mse_loss(self.layer(x).squeeze(-1), y)
            self.log("val_loss", loss, on_step=True, on_epoch=False)

    with pytest.raises(ValueError, match=r"logged per validation batch only .* on_epoch=True"):
        trainer_with(tmp_path, RectifiedLawCallback(schedule="all")).fit(
            PerBatch(), datamodule=NestedSubsetDataModule(Data(), budget=128, min_size=32)
        )


class _TwoValLoaders(Data):
    """The second validation loader is the test loss (scaled, so the two are told apart)."""

    def val_dataloader(self):
        x, y = self.val.tensors
        return [DataLoader(self.val, batch_size=64), DataLoader(TensorDataset(x, 3 * y), batch_size=64)]


class _PerLoader(Boring):
    def validation_step(self, batch, batch_idx, dataloader_idx=0):
        super().validation_step(batch, batch_idx)


def test_several_validation_loaders_monitor_the_one_named(tmp_path):
    def dm():
        return NestedSubsetDataModule(_TwoValLoaders(), budget=128, min_size=32)

    with pytest.raises(ValueError, match=r"per loader.*monitor='val_loss/dataloader_idx_0'"):
        trainer_with(tmp_path, RectifiedLawCallback(schedule="all")).fit(_PerLoader(), datamodule=dm())
    first, second = (
        RectifiedLawCallback(schedule="all", monitor=f"val_loss/dataloader_idx_{i}") for i in (0, 1)
    )
    # No validation inside the fits: each loss comes from the validation pass after it.
    trainer_with(tmp_path / "a", first, check_val_every_n_epoch=10).fit(_PerLoader(), datamodule=dm())
    trainer_with(tmp_path / "b", second, check_val_every_n_epoch=10).fit(_PerLoader(), datamodule=dm())
    assert all(b > 2 * a for a, b in zip(first.result.losses, second.result.losses, strict=True))


@pytest.mark.parametrize(
    "settings, match",
    [
        ({"max_epochs": 0}, "max_epochs=0 trains nothing"),
        ({"max_steps": 0}, "max_steps=0 trains nothing"),
        ({"limit_train_batches": 0}, "limit_train_batches=0 trains nothing"),
        ({"limit_val_batches": 0.0}, "limit_val_batches=0 turns validation off"),
    ],
)
def test_a_trainer_that_trains_or_validates_nothing_is_refused_before_training(tmp_path, settings, match):
    model = Boring()
    with pytest.raises(ValueError, match=match):
        trainer_with(tmp_path, RectifiedLawCallback(), **settings).fit(
            model, datamodule=NestedSubsetDataModule(Data(), budget=128, min_size=32)
        )
    assert model.starts == []  # refused, not run


def test_the_callback_given_twice_is_refused(tmp_path):
    a, b = RectifiedLawCallback(), RectifiedLawCallback(method="ats")
    assert a.state_key != b.state_key  # distinct in a checkpoint
    dm = NestedSubsetDataModule(Data(), budget=128, min_size=32)
    with pytest.raises(ValueError, match="given 2 times to one Trainer; give it once"):
        trainer_with(tmp_path, a, extra=[b]).fit(Boring(), datamodule=dm)


class _RunningScale(Boring):
    """Updates a non-persistent buffer (outside ``state_dict``) in training; validation reads it."""

    def __init__(self):
        super().__init__()
        self.register_buffer("steps", torch.zeros(()), persistent=False)

    def training_step(self, batch, batch_idx):
        self.steps += 1
        return super().training_step(batch, batch_idx)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", torch.nn.functional.mse_loss(self.layer(x).squeeze(-1), y) + 0.01 * self.steps)


def test_buffers_outside_the_state_dict_start_every_subset_run_afresh(tmp_path):
    law, model = RectifiedLawCallback(schedule="all"), _RunningScale()
    trainer_with(tmp_path, law, max_epochs=1).fit(
        model, datamodule=NestedSubsetDataModule(Data(), budget=128, min_size=16)
    )
    alone = RectifiedLawCallback(schedule="all")  # without the 128 run first: the same loss at 16
    trainer_with(tmp_path / "alone", alone, max_epochs=1).fit(
        _RunningScale(), datamodule=NestedSubsetDataModule(Data(), budget=64, min_size=16)
    )
    assert law.result.losses[-1] == pytest.approx(alone.result.losses[-1])
    assert model.steps.item() == 0  # the user's module is left as it was given


def test_module_state_puts_back_a_buffer_that_training_resized():
    from lightning_rectlaw.plugin.runs import ModuleState

    model = torch.nn.Sequential(torch.nn.Linear(2, 2))
    model[0].register_buffer("cache", torch.arange(3.0), persistent=False)
    state = ModuleState(model)
    model[0].cache = torch.zeros(5)  # a cache that grew
    model[0].weight.data.zero_()
    state.restore(model)
    assert torch.equal(model[0].cache, torch.arange(3.0)) and "cache" in dict(model[0].named_buffers())
    assert model[0].weight.abs().sum() > 0 and "0.cache" not in model.state_dict()


class _BackboneAndHead(Boring):
    """``backbone`` for Lightning's BackboneFinetuning; records whether it moved in each run."""

    def __init__(self):
        super().__init__()
        self.backbone = torch.nn.Linear(8, 8)
        self.initial = self.backbone.weight.detach().clone()
        self.backbone_moved = []

    def training_step(self, batch, _):
        x, y = batch
        return torch.nn.functional.mse_loss(self.layer(self.backbone(x)).squeeze(-1), y)

    def validation_step(self, batch, _):
        x, y = batch
        self.log("val_loss", torch.nn.functional.mse_loss(self.layer(self.backbone(x)).squeeze(-1), y))

    def on_train_end(self):
        self.backbone_moved.append(not torch.equal(self.backbone.weight.detach(), self.initial))


class _UnfreezesAfterAnEpoch(_BackboneAndHead):
    """A frozen backbone that the module unfreezes itself after the first epoch (a common
    fine-tuning pattern); records whether it was frozen at the start of each training run."""

    def __init__(self):
        super().__init__()
        self.backbone.requires_grad_(False)
        self.frozen_at_start = []

    def on_train_start(self):
        self.frozen_at_start.append(not self.backbone.weight.requires_grad)

    def on_train_epoch_end(self):
        self.backbone.requires_grad_(True)


def test_every_subset_run_and_the_users_fit_start_with_the_parameters_frozen_as_given(tmp_path):
    law, model = RectifiedLawCallback(schedule="all", continue_fit=True), _UnfreezesAfterAnEpoch()
    trainer_with(tmp_path, law).fit(model, datamodule=NestedSubsetDataModule(Data(), budget=128, min_size=16))
    assert model.frozen_at_start == [True] * 5  # 4 subset runs, then the user's fit
    alone = RectifiedLawCallback(schedule="all")  # without the 128 run first: the same loss at 16
    trainer_with(tmp_path / "alone", alone).fit(
        _UnfreezesAfterAnEpoch(), datamodule=NestedSubsetDataModule(Data(), budget=64, min_size=16)
    )
    assert law.result.losses[-1] == pytest.approx(alone.result.losses[-1])


def test_module_state_puts_back_frozen_flags_and_train_modes():
    from lightning_rectlaw.plugin.runs import ModuleState

    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    model[0].requires_grad_(False)
    model[1].eval()
    state = ModuleState(model)
    model.requires_grad_(True)
    model.train()
    state.restore(model)
    assert not model[0].weight.requires_grad and model[1].weight.requires_grad
    assert model.training and model[0].training and not model[1].training
    assert state.frozen == ["0.weight", "0.bias"]


def test_subset_runs_follow_the_users_backbone_fine_tuning_schedule(tmp_path):
    """BackboneFinetuning freezes the backbone in its setup and unfreezes it at an epoch: the
    subset runs used to inherit the freeze without the callback, and never trained the backbone."""
    from lightning.pytorch.callbacks import BackboneFinetuning

    model, schedule = _BackboneAndHead(), BackboneFinetuning(unfreeze_backbone_at_epoch=1)
    law = RectifiedLawCallback(schedule="all", continue_fit=True)
    trainer_with(tmp_path, law, extra=[schedule], max_epochs=3).fit(
        model, datamodule=NestedSubsetDataModule(Data(), budget=128, min_size=32)
    )
    assert model.backbone_moved == [True, True, True, True]  # 3 subset runs, then the user's fit
    frozen = _BackboneAndHead()  # the same model with the backbone never unfrozen
    law2 = RectifiedLawCallback(schedule="all")
    trainer_with(
        tmp_path / "frozen", law2, extra=[BackboneFinetuning(unfreeze_backbone_at_epoch=9)], max_epochs=3
    ).fit(frozen, datamodule=NestedSubsetDataModule(Data(), budget=128, min_size=32))
    assert frozen.backbone_moved == [False, False, False] and law2.result.losses != law.result.losses


def test_early_stopping_ends_the_subset_runs_and_compute_counts_what_they_trained(tmp_path):
    stop_now = EarlyStopping("val_loss", stopping_threshold=1e9)  # met at the first validation
    law = RectifiedLawCallback(schedule="all", results_dir=tmp_path / "res")
    trainer_with(tmp_path, law, extra=[stop_now], max_epochs=4).fit(
        Boring(), datamodule=NestedSubsetDataModule(Data(), budget=128, min_size=32)
    )
    assert law.result.examples_processed == 128 + 64 + 32  # one epoch each, not four
    assert stop_now.stopped_epoch == 0 and stop_now.wait_count == 0  # the user's own is untouched
    again = RectifiedLawCallback(schedule="all", results_dir=tmp_path / "res")  # all reused
    trainer_with(
        tmp_path, again, extra=[EarlyStopping("val_loss", stopping_threshold=1e9)], max_epochs=4
    ).fit(Boring(), datamodule=NestedSubsetDataModule(Data(), budget=128, min_size=32))
    assert again.result.reused == 3 and again.result.examples_processed == 128 + 64 + 32


class _HalvesTheLearningRate(Callback):
    """The user's own callback that changes training: halves the learning rate each epoch."""

    def __init__(self):
        self.calls = 0

    def on_train_epoch_start(self, trainer, pl_module):
        self.calls += 1
        for group in trainer.optimizers[0].param_groups:
            group["lr"] /= 2


def test_a_custom_callback_is_named_in_a_warning_and_shared_when_given(tmp_path):
    dm = lambda: NestedSubsetDataModule(Data(), budget=128, min_size=32)  # noqa: E731
    user = _HalvesTheLearningRate()
    law = RectifiedLawCallback(schedule="all")
    with pytest.warns(UserWarning, match=r"subset_callbacks=\[_HalvesTheLearningRate\]"):
        trainer_with(tmp_path, law, extra=[user]).fit(Boring(), datamodule=dm())
    assert user.calls == 0  # left out of the subset runs (the user's fit was stopped)

    shared = RectifiedLawCallback(schedule="all", subset_callbacks=[f"{__name__}._HalvesTheLearningRate"])
    user = _HalvesTheLearningRate()
    trainer_with(tmp_path / "b", shared, extra=[user]).fit(Boring(), datamodule=dm())
    assert user.calls == 0  # each run trained with a copy of it, not with the user's own
    assert shared.result.losses != law.result.losses  # and trained differently


def test_a_shared_callback_that_cannot_be_copied_fails_before_training_naming_it(tmp_path):
    import threading

    class HoldsALock(_HalvesTheLearningRate):
        def __init__(self):
            super().__init__()
            self.lock = threading.Lock()  # deepcopy cannot copy a lock

    model = Boring()
    law = RectifiedLawCallback(schedule="all", subset_callbacks=[HoldsALock])
    with pytest.raises(ValueError, match=r"fresh copy of your HoldsALock callback.*make it copyable"):
        trainer_with(tmp_path, law, extra=[HoldsALock()]).fit(
            model, datamodule=NestedSubsetDataModule(Data(), budget=128, min_size=32)
        )
    assert model.starts == []  # nothing trained


def test_a_changed_early_stopping_setting_is_a_different_computation(tmp_path, caplog):
    def run(patience):
        law = RectifiedLawCallback(schedule="all", results_dir=tmp_path / "res")
        caplog.clear()
        with caplog.at_level(logging.DEBUG, logger="lightning_rectlaw"):
            trainer_with(tmp_path, law, extra=[EarlyStopping("val_loss", patience=patience)]).fit(
                Boring(), datamodule=NestedSubsetDataModule(Data(), budget=128, min_size=32)
            )
        return [r.getMessage() for r in caplog.records if "[rectlaw] size" in r.getMessage()]

    run(3)
    assert all("reusing" in m for m in run(3))
    log = run(1)
    assert log and all("retraining" in m and "callbacks" in m for m in log)


def test_fast_dev_run_checks_the_code_but_predicts_and_caches_nothing(tmp_path):
    law = RectifiedLawCallback(schedule="all", results_dir=tmp_path / "runs")
    model = Boring()
    with pytest.warns(UserWarning, match="fast_dev_run: each subset trains 1 batch"):
        trainer_with(tmp_path, law, fast_dev_run=True).fit(
            model, datamodule=NestedSubsetDataModule(Data(), budget=128, min_size=32)
        )
    assert len(model.starts) == 3  # every subset ran (one batch each)
    assert law.result.sizes == [128, 64, 32] and law.result.predicted_loss is None
    assert law.result.status.startswith("fast_dev_run") and "no prediction" in repr(law.result)
    assert not (tmp_path / "runs").exists()  # no cache or result file a real run could pick up


def test_validate_with_the_callback_warns_that_it_measures_only_in_fit(tmp_path):
    law = RectifiedLawCallback()
    dm = NestedSubsetDataModule(Data(), budget=128, min_size=32)
    with pytest.warns(
        UserWarning, match=r"measures only in `trainer.fit`; it does nothing in `trainer.validate`"
    ):
        trainer_with(tmp_path, law).validate(Boring(), datamodule=dm)
    assert law.result is None


def test_too_few_subsets_for_the_method_fail_before_training(tmp_path):
    model = Boring()
    dm = NestedSubsetDataModule(Data(), budget=64, min_size=32)  # 64 and 32: two subsets
    with pytest.raises(ValueError, match=r"give 2 subset\(s\) \[64, 32\], but `method='ats'` needs 3 points"):
        trainer_with(tmp_path, RectifiedLawCallback(method="ats")).fit(model, datamodule=dm)
    assert model.starts == []
    # the zero-shot loss is not one of AtS's k points (it only screens diverged runs)...
    with pytest.raises(ValueError, match=r"\[64, 32\], but `method='robust_ats'` needs 3 points"):
        trainer_with(tmp_path, RectifiedLawCallback(zero_shot=True)).fit(model, datamodule=dm)
    # ...but it is one of the points the rectified law is fitted through
    law = RectifiedLawCallback(method="ourfit", zero_shot=True)
    dm = NestedSubsetDataModule(Data(), budget=128, min_size=32)  # 3 subsets + zero-shot = 4 points
    trainer_with(tmp_path, law).fit(Boring(), datamodule=dm)
    assert law.result.sizes == [128, 64, 32] and law.result.zero_shot_loss is not None


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: RectifiedLawCallback(schedule="some"), "`schedule` should be"),
        (lambda: RectifiedLawCallback(holdouts=0), "`holdouts` must be an integer of at least 1, got 0"),
        (lambda: RectifiedLawCallback(method="best"), "`method` should be one of"),
        (lambda: RectifiedLawCallback(method="AtS"), "got 'AtS'; did you mean 'ats'"),  # the paper's name
        (lambda: RectifiedLawCallback(level=1.5), r"`level` must be in \(0, 1\)"),
        (lambda: RectifiedLawCallback(level=-1), r"`level` must be in \(0, 1\)"),
        (lambda: RectifiedLawCallback(method="modelsize"), "predicts no loss from one curve"),
        (lambda: RectifiedLawCallback(method="zeroshot"), "set `zero_shot=True`"),
        (
            lambda: RectifiedLawCallback(subset_callbacks=["no_such_pkg.Unfreeze"]),
            "cannot import 'no_such_pkg",
        ),
        (
            lambda: RectifiedLawCallback(subset_callbacks=[torch.nn.Linear]),
            "takes Lightning Callback classes",
        ),
    ],
)
def test_bad_callback_options(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize("every", [1, 2])  # 2 of 3 epochs: the fit's last validation is stale
def test_each_loss_is_the_final_weights_validation_loss_with_one_pass_when_possible(tmp_path, every):
    class Recording(Boring):
        def __init__(self):
            super().__init__()
            self.finals, self.validations = [], 0

        def on_train_end(self):
            self.finals.append({k: v.clone() for k, v in self.state_dict().items()})

        def on_validation_start(self):
            self.validations += 1

    law = RectifiedLawCallback(schedule="all")
    model = Recording()
    trainer = trainer_with(tmp_path, law, max_epochs=3, check_val_every_n_epoch=every)
    data = Data()
    trainer.fit(model, datamodule=NestedSubsetDataModule(data, budget=128, min_size=32))
    val_x, val_y = data.val.tensors
    for final, loss in zip(model.finals, law.result.losses):
        w, b = final["layer.weight"], final["layer.bias"]
        expected = torch.nn.functional.mse_loss((val_x @ w.T + b).squeeze(-1), val_y) + 0.05
        assert loss == pytest.approx(expected.item(), rel=1e-5)
    passes_per_run = 3 if every == 1 else 2  # (3 in-fit) or (1 in-fit + 1 final)
    check = 1  # the monitor, on one batch of the untrained model before any training (no zero-shot loss)
    assert model.validations == len(law.result.sizes) * passes_per_run + check


class _PerByte(Boring):
    """Logs, beside the per-token ``val_loss`` (the MSE + 0.05), a loss per byte: 3 x the MSE."""

    def validation_step(self, batch, batch_idx):
        super().validation_step(batch, batch_idx)
        x, y = batch
        self.log("val_bpb", 3 * torch.nn.functional.mse_loss(self.layer(x).squeeze(-1), y))


class _Tokenized(Data):
    """A datamodule that says which tokenizer made its examples, as the shipped ones do."""

    tokenizer_info = {"name": "bpe-300", "sha256": "ab" * 32}


def test_monitor_auto_is_val_bpb_where_the_module_logs_it_and_the_cache_keys_on_that(tmp_path):
    def fit(**kw):
        law = RectifiedLawCallback(schedule="all", zero_shot=True, results_dir=tmp_path / "res", **kw)
        dm = NestedSubsetDataModule(_Tokenized(), budget=128, min_size=32)  # the wrapper reads it through
        trainer_with(tmp_path, law).fit(_PerByte(), datamodule=dm)
        return law.result

    auto = fit()
    assert auto.monitor == "val_bpb" and auto.tokenizer == {"name": "bpe-300", "sha256": "ab" * 32}
    saved = json.loads((tmp_path / "res" / "rectlaw_result.json").read_text())
    assert saved["monitor"] == "val_bpb" and saved["tokenizer"] == auto.tokenizer
    # the resume cache knows the metric by its resolved name: naming it reuses every run...
    named = fit(monitor="val_bpb")
    assert named.reused == 3 and named.losses == auto.losses and named.zero_shot_loss == auto.zero_shot_loss
    # ...and the per-token loss is another measurement (the same seeded runs, scored on val_loss)
    per_token = fit(monitor="val_loss")
    assert per_token.reused == 0 and per_token.monitor == "val_loss"
    assert auto.losses == pytest.approx([3 * (t - 0.05) for t in per_token.losses], rel=1e-5)
    assert auto.zero_shot_loss == pytest.approx(3 * (per_token.zero_shot_loss - 0.05), rel=1e-5)
    from lightning_rectlaw.selection import RectifiedLawResult

    old = {k: v for k, v in saved.items() if k not in ("monitor", "tokenizer")}  # a file from before
    assert RectifiedLawResult.from_dict(old).monitor is None


def test_monitor_auto_is_val_loss_for_a_module_that_logs_no_val_bpb(tmp_path):
    law = RectifiedLawCallback(schedule="all")
    assert law.monitor == "auto"  # the default
    model = Boring()
    trainer_with(tmp_path, law).fit(model, datamodule=NestedSubsetDataModule(Data(), budget=128, min_size=32))
    assert law.result.monitor == "val_loss" and law.result.tokenizer is None  # Data says no tokenizer
    assert law.result.status == "ok" and len(model.starts) == 3
