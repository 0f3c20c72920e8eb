"""The Lightning plugin on CPU with a tiny "boring" model and a tiny config-built LM."""

import json
import logging

import lightning as L
import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping, LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger
from torch.utils.data import DataLoader, TensorDataset

from lightning_rectlaw import CausalLMModule, NestedSubsetDataModule, RectifiedLawCallback, TextDataModule
from lightning_rectlaw.table import LossTable


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


def _trainer(tmp_path, cb, **kw):
    return L.Trainer(
        max_epochs=kw.pop("max_epochs", 2),
        callbacks=[cb, *kw.pop("extra", [])],
        enable_progress_bar=False,
        logger=TensorBoardLogger(tmp_path / "tb"),
        enable_model_summary=False,
        **kw,
    )


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


def test_callback_runs_every_subset_from_identical_weights_with_fresh_optimizers(tmp_path):
    model = Boring()
    initial = model.layer.weight.detach().clone()
    law = RectifiedLawCallback(schedule="all", zero_shot=True)
    trainer = _trainer(tmp_path, law)
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
    trainer = _trainer(tmp_path, law, extra=extra)
    trainer.fit(model, datamodule=NestedSubsetDataModule(Data(), budget=128, min_size=32))
    assert fired == [0, 1]  # only the user's own fit, not the subset runs
    assert trainer.global_step == 2 * 16  # 512 examples / 32 per batch, 2 epochs
    assert ckpt.best_model_path and len(list((tmp_path / "ckpt").glob("*.ckpt"))) == 1
    assert len(law.result.sizes) == 3


def test_tensorboard_has_subset_runs_scalars_and_figure(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    law = RectifiedLawCallback(schedule="all")
    trainer = _trainer(tmp_path, law)
    trainer.fit(Boring(), datamodule=NestedSubsetDataModule(Data(), budget="1/2", min_size=32))
    ea = EventAccumulator(trainer.logger.log_dir, size_guidance={"images": 0, "scalars": 0})
    ea.Reload()
    steps = [e.step for e in ea.Scalars("rectlaw/test_loss_vs_subset_size")]
    assert sorted(steps) == [32, 64, 128, 256]
    assert "rectlaw/fit" in ea.Tags()["images"]
    sub_runs = sorted(p.name for p in (tmp_path / "tb/lightning_logs/version_0/subsets").iterdir())
    assert sub_runs == ["subset_128", "subset_256", "subset_32", "subset_64"]


def test_ats_schedule_stops_at_the_phase_transition(tmp_path):
    class Flat(Boring):
        def validation_step(self, batch, _):
            n = len(self.trainer.datamodule.train_dataloader().dataset)
            wiggle = 1 + 0.002 * (-1) ** int(np.log2(n))
            loss = (2.0 * n**-0.3 if n >= 64 else 2.0 * 64**-0.3) * wiggle
            self.log("val_loss", torch.tensor(loss))

    law = RectifiedLawCallback(schedule="ats")
    _trainer(tmp_path, law).fit(
        Flat(), datamodule=NestedSubsetDataModule(Data(2048), budget=1024, min_size=8)
    )
    assert law.result.sizes[-1] == 32  # 1024 .. 64 accepted, 32 rejected: nothing smaller was run


def test_max_steps_runs_count_the_examples_they_process(tmp_path):
    law = RectifiedLawCallback(schedule="all")
    trainer = _trainer(tmp_path, law, max_steps=6)  # 6 batches of 32 = 192 examples per subset
    trainer.fit(Boring(), datamodule=NestedSubsetDataModule(Data(), budget=128, min_size=32))
    assert trainer.datamodule.batch_size == 32
    # ceil(192 / size) passes over each subset: 2 × 128, 3 × 64, 6 × 32
    assert law.result.examples_processed == 2 * 128 + 3 * 64 + 6 * 32


def test_a_diverged_but_finite_run_is_left_out_and_reported(tmp_path):
    law = RectifiedLawCallback(zero_shot=True)  # the default method, robust_ats
    with pytest.warns(UserWarning, match="left out of the ranking as bad runs"):
        _trainer(tmp_path, law).fit(
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
        _trainer(tmp_path, law).fit(
            Boring(blow_up_at=64), datamodule=NestedSubsetDataModule(Data(2048), budget=256, min_size=64)
        )
    assert law.result.status.startswith("no prediction: AtS needs k=3 points")
    assert "bad run" in law.result.status and law.result.predicted_loss is None


def test_pooled_schedule_runs_only_the_subsets_it_needs(tmp_path):
    law = RectifiedLawCallback(method="pooled", holdouts=2)  # schedule "auto": k + holdouts sizes
    _trainer(tmp_path, law).fit(
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

    from lightning_rectlaw.subsets import check_strategy

    spawned = DDPStrategy(start_method="spawn")
    spawned.cluster_environment = SimpleNamespace(creates_processes_externally=False)
    for strategy, match in ((object(), "not object"), (spawned, "with spawned processes")):
        with pytest.raises(ValueError, match=rf"{match}.*use strategy='ddp'"):
            check_strategy(SimpleNamespace(world_size=2, strategy=strategy))
    check_strategy(SimpleNamespace(world_size=1, strategy=object()))  # single device: fine


def test_resume_skips_finished_subsets(tmp_path):
    law = RectifiedLawCallback(schedule="all", results_dir=tmp_path / "res")
    _trainer(tmp_path, law).fit(Boring(), datamodule=NestedSubsetDataModule(Data(), budget=128, min_size=32))
    first = law.result.losses
    (tmp_path / "res" / "rectlaw_runs" / "size_32.json").unlink()  # as if interrupted there
    model = Boring()
    law2 = RectifiedLawCallback(schedule="all", results_dir=tmp_path / "res")
    _trainer(tmp_path, law2).fit(model, datamodule=NestedSubsetDataModule(Data(), budget=128, min_size=32))
    assert len(model.starts) == 1  # only the missing subset was trained again
    assert law2.result.losses == pytest.approx(first)


def _resumed(tmp_path, caplog, data, **trainer_kw):
    """Fit with the resume cache of ``tmp_path/res``; the result and the cache's log lines."""
    law = RectifiedLawCallback(schedule="all", results_dir=tmp_path / "res")
    caplog.clear()
    with caplog.at_level(logging.INFO):
        _trainer(tmp_path, law, **trainer_kw).fit(
            Boring(), datamodule=NestedSubsetDataModule(data, budget=128, min_size=32)
        )
    return law.result, [r.getMessage() for r in caplog.records if "[rectlaw] size" in r.getMessage()]


def test_resume_reuses_a_run_only_for_the_same_computation(tmp_path, caplog):
    first, _ = _resumed(tmp_path, caplog, Data())
    again, log = _resumed(tmp_path, caplog, Data())
    assert again.losses == first.losses and len(log) == 3 and all("reusing" in m for m in log)
    assert again.seconds == pytest.approx(first.seconds)  # cached runs keep their original time

    # the data regenerated in place: same size, targets x10
    changed, log = _resumed(tmp_path, caplog, Data(scale=10.0))
    assert all("retraining" in m and "train data" in m and "validation data" in m for m in log)
    assert changed.losses[0] > 10 * first.losses[0]

    # the datamodule's batch size, then a Trainer setting the subset runs inherit
    _resumed(tmp_path, caplog, Data())
    _, log = _resumed(tmp_path, caplog, Data(batch_size=16))
    assert all("retraining" in m and "datamodule settings" in m for m in log)
    _resumed(tmp_path, caplog, Data())
    _, log = _resumed(tmp_path, caplog, Data(), accumulate_grad_batches=2)
    assert all("retraining" in m and "trainer settings" in m for m in log)


def test_a_resumed_subset_is_bit_identical_to_an_uninterrupted_one(tmp_path, caplog):
    full, _ = _resumed(tmp_path, caplog, Data())
    (tmp_path / "res" / "rectlaw_runs" / "size_64.json").unlink()  # interrupted in that run
    torch.manual_seed(1234)  # and the process's RNG elsewhere: it must not matter
    resumed, log = _resumed(tmp_path, caplog, Data())
    assert resumed.losses == full.losses  # exactly, not approximately
    assert sum("retraining" in m for m in log) == 0 and sum("reusing" in m for m in log) == 2


def test_min_epochs_and_min_steps_do_not_defeat_the_stop(tmp_path):
    law = RectifiedLawCallback()
    trainer = _trainer(tmp_path, law, min_epochs=3, min_steps=50)
    trainer.fit(Boring(), datamodule=NestedSubsetDataModule(Data(), budget=128, min_size=32))
    assert law.result.status == "ok" and trainer.global_step == 0  # the user's fit did not train


def test_continue_fit_trains_exactly_as_without_the_callback(tmp_path):
    torch.manual_seed(7)
    plain = Boring()
    _trainer(tmp_path / "a", RectifiedLawCallback.__base__()).fit(
        plain, datamodule=NestedSubsetDataModule(Data(), budget=128, min_size=32)
    )
    torch.manual_seed(7)
    measured = Boring()
    law = RectifiedLawCallback(continue_fit=True)
    _trainer(tmp_path / "b", law).fit(
        measured, datamodule=NestedSubsetDataModule(Data(), budget=128, min_size=32)
    )
    assert law.result.status == "ok"
    assert torch.equal(plain.layer.weight, measured.layer.weight)


def test_resuming_a_fit_from_a_checkpoint_keeps_the_measured_result(tmp_path):
    law = RectifiedLawCallback(continue_fit=True)
    ckpt = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)
    dm = NestedSubsetDataModule(Data(), budget=128, min_size=32)
    _trainer(tmp_path, law, extra=[ckpt]).fit(Boring(), datamodule=dm)
    measured = law.result.to_json()

    resumed_law = RectifiedLawCallback(continue_fit=True)
    model = Boring()
    trainer = _trainer(
        tmp_path, resumed_law, extra=[ModelCheckpoint(dirpath=tmp_path / "ckpt2")], max_epochs=3
    )
    trainer.fit(
        model,
        datamodule=NestedSubsetDataModule(Data(), budget=128, min_size=32),
        ckpt_path=tmp_path / "ckpt" / "last.ckpt",
    )
    assert resumed_law.result.to_json() == measured  # restored, not re-measured from fine-tuned weights
    assert len(model.starts) == 1  # only the user's own fit trained (its third epoch)
    assert trainer.current_epoch == 3


def test_diverged_run_is_recorded_and_excluded(tmp_path):
    law = RectifiedLawCallback(schedule="all")
    with pytest.warns(UserWarning, match="diverged"):
        _trainer(tmp_path, law).fit(
            Boring(diverge_below=50), datamodule=NestedSubsetDataModule(Data(), budget=256, min_size=16)
        )
    assert set(law.result.failed) == {32, 16}
    assert law.result.sizes == [256, 128, 64] and law.result.status == "ok"


def test_monitored_key_never_logged(tmp_path):
    law = RectifiedLawCallback(schedule="all")
    with pytest.raises(ValueError, match="'val_loss' was never logged.*'other'"):
        _trainer(tmp_path, law).fit(
            Boring(key="other"), datamodule=NestedSubsetDataModule(Data(), budget=128, min_size=32)
        )


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"budget": 4096}, "larger than the train set"),
        ({"budget": 8, "min_size": 16}, r"`min_size` \(16\) is above the budget \(8\)"),
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

    with pytest.raises(TypeError, match="has no `train_dataloader`"):
        NestedSubsetDataModule(NoTrain())
    with pytest.raises(TypeError, match="NestedSubsetDataModule"):
        _trainer(tmp_path, RectifiedLawCallback()).fit(Boring(), datamodule=Data())


def test_causal_lm_on_builtin_text(tmp_path):
    cfg = {
        "model_type": "gpt2",
        "n_layer": 1,
        "n_embd": 16,
        "n_head": 2,
        "vocab_size": 257,
        "n_positions": 32,
    }
    model = CausalLMModule(config=cfg, lr=3e-3)
    assert torch.equal(
        CausalLMModule(config=cfg).model.transformer.wte.weight, model.model.transformer.wte.weight
    )  # seeded: same initial weights
    data = TextDataModule(block_size=32, batch_size=32, max_val_blocks=32)
    law = RectifiedLawCallback(schedule="all", zero_shot=True)
    trainer = L.Trainer(
        max_epochs=1,
        callbacks=[law],
        logger=False,
        enable_progress_bar=False,
        default_root_dir=tmp_path,
        enable_model_summary=False,
    )
    trainer.fit(model, datamodule=NestedSubsetDataModule(data, budget=256, min_size=64))
    r = law.result
    assert r.zero_shot_loss == pytest.approx(np.log(257), rel=0.05)  # untrained: uniform over bytes
    assert r.losses[0] < r.losses[-1] < r.zero_shot_loss  # more data, lower loss
    assert (tmp_path / "rectlaw_result.json").exists()


def test_text_datamodule_reads_files_and_reports_bad_jsonl(tmp_path):
    (tmp_path / "a.txt").write_text("hello world " * 50)
    (tmp_path / "b.jsonl").write_text('{"text": "one doc"}\n{"text": "two docs here"}\n')
    dm = TextDataModule(files=[tmp_path / "a.txt", tmp_path / "b.jsonl"], block_size=8, val_fraction=0.3)
    dm.setup("fit")
    assert len(dm.train_set) > 0 and len(dm.val_set) > 0
    (tmp_path / "bad.jsonl").write_text('{"txt": 1}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl, line 1: expected a JSON object with a 'text'"):
        TextDataModule(files=[tmp_path / "bad.jsonl", tmp_path / "a.txt"]).setup("fit")


def test_text_datamodule_from_a_hugging_face_dataset(monkeypatch):
    """`datasets` is optional: a stand-in module checks what we pass to load_dataset and read back."""
    import sys
    import types

    calls = []

    def load_dataset(**kw):
        calls.append(kw)
        return [{"text": f"document {i} " * 20, "label": i} for i in range(10)] + [{"text": ""}]

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    dm = TextDataModule(hf_dataset="json", hf_data_files=["train.jsonl"], block_size=8)
    dm.setup("fit")
    assert calls == [{"path": "json", "split": "train", "data_files": ["train.jsonl"]}]
    assert len(dm.train_set) > len(dm.val_set) > 0
    with pytest.raises(ValueError, match=r"no column 'body'.*set data.text_field"):
        TextDataModule(hf_dataset="json", text_field="body").setup("fit")
    monkeypatch.setitem(sys.modules, "datasets", None)  # not installed
    with pytest.raises(ImportError, match="pip install datasets"):
        TextDataModule(hf_dataset="imdb").setup("fit")
    with pytest.raises(ValueError, match="either `files` or `hf_dataset`"):
        TextDataModule(files=["a.txt"], hf_dataset="imdb")


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: CausalLMModule(), "give exactly one of"),
        (lambda: CausalLMModule(config={"n_layer": 1}), "needs a 'model_type'"),
        (lambda: TextDataModule(val_fraction=1.0), "`val_fraction` must be in"),
        (lambda: TextDataModule(block_size=1), "`block_size` must be at least 2"),
        (lambda: RectifiedLawCallback(schedule="some"), "`schedule` should be"),
        (lambda: RectifiedLawCallback(holdouts=0), "`holdouts` must be an integer of at least 1, got 0"),
        (lambda: RectifiedLawCallback(method="best"), "`method` should be one of"),
        (lambda: RectifiedLawCallback(level=1.5), r"`level` must be in \(0, 1\)"),
        (lambda: RectifiedLawCallback(level=-1), r"`level` must be in \(0, 1\)"),
        (lambda: RectifiedLawCallback(method="modelsize"), "predicts no loss from one curve"),
        (lambda: RectifiedLawCallback(method="zeroshot"), "set `zero_shot=True`"),
    ],
)
def test_bad_module_and_callback_options(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_the_callback_given_twice_is_refused(tmp_path):
    a, b = RectifiedLawCallback(), RectifiedLawCallback(method="ats")
    assert a.state_key != b.state_key  # distinct in a checkpoint
    dm = NestedSubsetDataModule(Data(), budget=128, min_size=32)
    with pytest.raises(ValueError, match="given 2 times to one Trainer; give it once"):
        _trainer(tmp_path, a, extra=[b]).fit(Boring(), datamodule=dm)


def test_validate_with_the_callback_warns_that_it_measures_only_in_fit(tmp_path):
    law = RectifiedLawCallback()
    dm = NestedSubsetDataModule(Data(), budget=128, min_size=32)
    with pytest.warns(
        UserWarning, match=r"measures only in `trainer.fit`; it does nothing in `trainer.validate`"
    ):
        _trainer(tmp_path, law).validate(Boring(), datamodule=dm)
    assert law.result is None


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
    _trainer(tmp_path, law).fit(model, datamodule=NestedSubsetDataModule(data, budget=128, min_size=32))
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

    model = Boring()
    with pytest.raises(TypeError, match="serves an IterableDataset.*map-style dataset"):
        _trainer(tmp_path, RectifiedLawCallback()).fit(model, datamodule=NestedSubsetDataModule(Streaming()))
    with pytest.raises(ValueError, match="NoValidation has no val_dataloader"):
        _trainer(tmp_path, RectifiedLawCallback()).fit(
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


class KilledOnce(Boring):
    """Dies after ``kill_after`` training steps of the 128-example subset, the first time only."""

    def __init__(self, flag, kill_after=5):
        super().__init__()
        self.flag, self.kill_after, self.steps_128 = flag, kill_after, 0

    def training_step(self, batch, i):
        n = len(self.trainer.datamodule.train_dataloader().dataset)
        if n == 128:
            self.steps_128 += 1
            if self.steps_128 > self.kill_after and not self.flag.exists():
                self.flag.write_text("killed")
                raise KeyboardInterrupt  # as a job killed by Slurm would be
        return super().training_step(batch, i)


def test_a_subset_interrupted_mid_run_resumes_from_its_checkpoint(tmp_path):
    flag, res = tmp_path / "killed", tmp_path / "res"
    dm = lambda: NestedSubsetDataModule(Data(), budget=128, min_size=32)  # noqa: E731
    law = RectifiedLawCallback(schedule="all", results_dir=res, checkpoint_every=0)
    with pytest.raises((KeyboardInterrupt, SystemExit)):
        L.Trainer(max_epochs=2, callbacks=[law], enable_progress_bar=False, logger=False).fit(
            KilledOnce(flag), datamodule=dm()
        )
    partial = list((res / "rectlaw_runs").glob("partial_*_size_128"))
    assert len(partial) == 1 and (partial[0] / "last.ckpt").exists()

    model = KilledOnce(flag)
    law = RectifiedLawCallback(schedule="all", results_dir=res, checkpoint_every=0)
    L.Trainer(max_epochs=2, callbacks=[law], enable_progress_bar=False, logger=False).fit(
        model, datamodule=dm()
    )
    assert law.result.status == "ok" and law.result.sizes == [128, 64, 32]
    assert model.steps_128 < 8  # 2 epochs x 4 batches: it went on from the checkpoint, not from 0
    assert not list((res / "rectlaw_runs").glob("partial_*"))  # dropped once the subset finished


def test_too_few_subsets_for_the_method_fail_before_training(tmp_path):
    model = Boring()
    dm = NestedSubsetDataModule(Data(), budget=64, min_size=32)  # 64 and 32: two subsets
    with pytest.raises(ValueError, match=r"give 2 subset\(s\) \[64, 32\], but `method='ats'` needs 3 points"):
        _trainer(tmp_path, RectifiedLawCallback(method="ats")).fit(model, datamodule=dm)
    assert model.starts == []


class Image:
    """Like a PIL image: its repr holds an address, its pickle the pixels."""

    def __init__(self, pixels):
        self.pixels = pixels


def test_the_fingerprint_hashes_contents_not_addresses():
    from lightning_rectlaw.cache import _digest

    assert _digest([Image([1, 2, 3])]) == _digest([Image([1, 2, 3])])
    assert _digest([Image([1, 2, 3])]) != _digest([Image([1, 2, 4])])
    assert _digest({"input_ids": torch.arange(4)}) != _digest({"input_ids": torch.arange(1, 5)})
