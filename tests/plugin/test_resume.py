"""Resume: the cache reuses only the same computation; interrupted runs and fits continue."""

import logging
import sys

import lightning as L
import pytest
import torch
from boring import Boring, Data, trainer_with
from lightning.pytorch.callbacks import ModelCheckpoint

from lightning_rectlaw import NestedSubsetDataModule, RectifiedLawCallback


def test_resume_skips_finished_subsets(tmp_path):
    law = RectifiedLawCallback(schedule="all", results_dir=tmp_path / "res")
    trainer_with(tmp_path, law).fit(
        Boring(), datamodule=NestedSubsetDataModule(Data(), budget=128, min_size=32)
    )
    first = law.result.losses
    (tmp_path / "res" / "rectlaw_runs" / "size_32.json").unlink()  # as if interrupted there
    model = Boring()
    law2 = RectifiedLawCallback(schedule="all", results_dir=tmp_path / "res")
    trainer_with(tmp_path, law2).fit(
        model, datamodule=NestedSubsetDataModule(Data(), budget=128, min_size=32)
    )
    assert len(model.starts) == 1  # only the missing subset was trained again
    assert law2.result.losses == pytest.approx(first)


def _resumed(tmp_path, caplog, data, **trainer_kw):
    """Fit with the resume cache of ``tmp_path/res``; the result and the cache's log lines."""
    law = RectifiedLawCallback(schedule="all", results_dir=tmp_path / "res")
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="lightning_rectlaw"):  # reuse lines are DEBUG
        trainer_with(tmp_path, law, **trainer_kw).fit(
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


def test_resuming_a_fit_from_a_checkpoint_keeps_the_measured_result(tmp_path):
    law = RectifiedLawCallback(continue_fit=True)
    ckpt = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)
    dm = NestedSubsetDataModule(Data(), budget=128, min_size=32)
    trainer_with(tmp_path, law, extra=[ckpt]).fit(Boring(), datamodule=dm)
    measured = law.result.to_json()

    resumed_law = RectifiedLawCallback(continue_fit=True)
    model = Boring()
    trainer = trainer_with(
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


class Image:
    """Like a PIL image: its repr holds an address, its pickle the pixels."""

    def __init__(self, pixels):
        self.pixels = pixels


def test_the_fingerprint_hashes_contents_not_addresses():
    from lightning_rectlaw.plugin.fingerprint import digest as _digest

    assert _digest([Image([1, 2, 3])]) == _digest([Image([1, 2, 3])])
    assert _digest([Image([1, 2, 3])]) != _digest([Image([1, 2, 4])])
    assert _digest({"input_ids": torch.arange(4)}) != _digest({"input_ids": torch.arange(1, 5)})


def test_a_changed_training_step_is_a_different_computation(tmp_path, caplog):
    first, _ = _resumed(tmp_path, caplog, Data())

    class Edited(Boring):
        def training_step(self, batch, i):
            return 2 * super().training_step(batch, i)  # the user edited their loss

    law = RectifiedLawCallback(schedule="all", results_dir=tmp_path / "res")
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="lightning_rectlaw"):  # reuse lines are DEBUG
        trainer_with(tmp_path, law).fit(
            Edited(), datamodule=NestedSubsetDataModule(Data(), budget=128, min_size=32)
        )
    log = [r.getMessage() for r in caplog.records if "[rectlaw] size" in r.getMessage()]
    assert log and all("retraining" in m and "code" in m for m in log)


def test_a_frozen_layer_is_a_different_computation(tmp_path, caplog):
    """Same weights, same code: freezing a layer before fit (``requires_grad_(False)``) trains
    another model, and the cache must not hand back the unfrozen runs."""
    _resumed(tmp_path, caplog, Data())
    model = Boring()
    model.layer.bias.requires_grad_(False)
    law = RectifiedLawCallback(schedule="all", results_dir=tmp_path / "res")
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="lightning_rectlaw"):
        trainer_with(tmp_path, law).fit(
            model, datamodule=NestedSubsetDataModule(Data(), budget=128, min_size=32)
        )
    log = [r.getMessage() for r in caplog.records if "[rectlaw] size" in r.getMessage()]
    assert log and all("retraining" in m and "frozen parameters" in m for m in log)


def test_a_larger_budget_reuses_the_smaller_subsets_already_run(tmp_path):
    """An adaptive sweep's next rung: the same candidate with twice the budget trains only the new size."""
    from boring import Boring, Data, trainer_with

    from lightning_rectlaw import NestedSubsetDataModule, RectifiedLawCallback

    def run(budget):
        law = RectifiedLawCallback(schedule="all", results_dir=tmp_path / "res", method="ats", k=2)
        model = Boring()
        trainer_with(tmp_path, law).fit(
            model, datamodule=NestedSubsetDataModule(Data(), budget=budget, min_size=32, target_size=512)
        )
        return law.result, len(model.starts)

    small, trained = run(64)
    assert small.sizes == [64, 32] and trained == 2
    large, trained = run(256)
    assert large.sizes == [256, 128, 64, 32] and trained == 2  # 256 and 128 only
    assert large.losses[2:] == small.losses


class _WithHead(Boring):
    """Boring with its layer built by a class from the user's other file."""

    def __init__(self, head):
        super().__init__()
        self.layer = head()


def _fit_with_head(tmp_path, caplog, head) -> list[str]:
    """Fit ``_WithHead(head)`` from the same initial weights with the cache; its cache log lines."""
    torch.manual_seed(0)
    law = RectifiedLawCallback(schedule="all", results_dir=tmp_path / "res")
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="lightning_rectlaw"):
        trainer_with(tmp_path, law).fit(
            _WithHead(head), datamodule=NestedSubsetDataModule(Data(), budget=128, min_size=32)
        )
    return [r.getMessage() for r in caplog.records if "[rectlaw] size" in r.getMessage()]


def _fresh_import(module: str, *also: str):
    """Import ``module`` again from disk, after ``also`` (modules it imports) are dropped too."""
    import importlib

    for name in (module, *also):
        sys.modules.pop(name, None)
    importlib.invalidate_caches()
    return importlib.import_module(module)


def test_an_edited_layer_in_another_file_is_a_different_computation(tmp_path, caplog, monkeypatch):
    """The module's own class is unchanged; a layer it builds, from the user's other file, is not."""
    src = tmp_path / "user_layers.py"
    monkeypatch.syspath_prepend(str(tmp_path))

    def write_layer(activation):
        src.write_text(
            "import torch\n\n"
            "class Head(torch.nn.Linear):\n"
            "    def __init__(self):\n"
            "        super().__init__(8, 1)\n\n"
            f"    def forward(self, x):\n        return {activation}(super().forward(x))\n"
        )
        return _fresh_import("user_layers").Head

    run = lambda head: _fit_with_head(tmp_path, caplog, head)  # noqa: E731
    run(write_layer("torch.relu"))
    assert all("reusing" in m for m in run(write_layer("torch.relu")))
    log = run(write_layer("torch.tanh"))  # same weights, same module class: another forward
    assert log and all("retraining" in m and "code" in m for m in log)


def test_an_edited_helper_that_a_layer_file_imports_is_a_different_computation(tmp_path, caplog, monkeypatch):
    """The layer's file is unchanged; the helper module it imports (the user's own file) is not."""
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "user_head.py").write_text(
        "import torch\n\nfrom user_activations import squash\n\n"
        "class Head(torch.nn.Linear):\n"
        "    def __init__(self):\n"
        "        super().__init__(8, 1)\n\n"
        "    def forward(self, x):\n        return squash(super().forward(x))\n"
    )

    def write_helper(activation):
        (tmp_path / "user_activations.py").write_text(
            f"import torch\n\ndef squash(x):\n    return {activation}(x)\n"
        )
        return _fresh_import("user_head", "user_activations").Head

    run = lambda head: _fit_with_head(tmp_path, caplog, head)  # noqa: E731
    run(write_helper("torch.relu"))
    assert all("reusing" in m for m in run(write_helper("torch.relu")))
    log = run(write_helper("torch.tanh"))
    assert log and all("retraining" in m and "code" in m for m in log)


def test_installed_packages_count_by_version_not_followed_file_by_file():
    """The walk into imports stays in the user's project: numpy, scipy or transformers are not
    read file by file (their version is hashed)."""
    from lightning_rectlaw.plugin.fingerprint import _is_project_file, _project_imports

    assert not _is_project_file("numpy") and not _is_project_file("json")
    assert _is_project_file(__name__)
    assert all(_is_project_file(name) for name in _project_imports(__name__))
    assert "boring" in _project_imports(__name__)


@pytest.mark.slow
def test_a_function_hyperparameter_hashes_by_its_code_and_values():
    """An activation passed to the module (saved in hparams) is the same computation in another
    process (not its address), and another one when its code or a value it reads changes."""
    import subprocess

    from lightning_rectlaw.plugin.fingerprint import digest as _digest

    def scaled(factor):
        return lambda x: factor * x

    assert _digest(scaled(2.0)) == _digest(scaled(2.0)) != _digest(scaled(3.0))
    assert _digest(lambda x: x + 1) != _digest(lambda x: x + 2)
    code = (
        "from lightning_rectlaw.plugin.fingerprint import digest as _digest\n"
        "def act(x):\n    return x * 2\n"
        "print(_digest({'act': act}))\n"
    )
    runs = {
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
        for _ in range(2)
    }
    assert len(runs) == 1  # the same in two processes


def test_more_processes_are_a_different_computation(tmp_path):
    """Under DDP each process takes a batch: twice the processes, twice the effective batch."""
    from lightning_rectlaw.plugin.fingerprint import fingerprint_parts
    from lightning_rectlaw.plugin.runs import ModuleState

    model, dm = Boring(), NestedSubsetDataModule(Data(), budget=128, min_size=32)
    dm.setup("fit")
    weights = ModuleState(model)

    def parts(**kw):
        trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, **kw)
        return fingerprint_parts(model, dm, trainer, "val_loss", weights)

    one, two = parts(devices=1), parts(devices=2, strategy="ddp")
    assert one["placement"] != two["placement"]
    assert {k for k in one if one[k] != two[k]} == {"placement"}
