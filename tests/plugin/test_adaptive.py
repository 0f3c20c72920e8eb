"""`adaptive_sweep`: the adaptive rounds over candidate modules in one process, without Hydra."""

import pytest


def test_in_process_adaptive_sweep_over_candidate_modules(tmp_path):
    """The notebook helper: the same rounds without Hydra; a failing candidate does not stop the others."""
    from boring import Boring, Data

    from lightning_rectlaw import adaptive_sweep

    class Offset(Boring):
        def __init__(self, offset):
            super().__init__()
            self.offset = offset

        def validation_step(self, batch, _):
            x, y = batch
            loss = torch.nn.functional.mse_loss(self.layer(x).squeeze(-1), y) + 0.05 + self.offset
            self.log("val_loss", loss)

    def broken():
        raise RuntimeError("cannot load this checkpoint")

    import torch

    sweep = adaptive_sweep(
        {
            "good": lambda: Offset(0.0),
            "close": lambda: Offset(0.002),
            "bad": lambda: Offset(3.0),
            "broken": broken,
        },
        Data(n=2048),
        budget=1024,
        min_size=32,
        results_dir=tmp_path,
        trainer={
            "max_epochs": 1,
            "logger": False,
            "enable_progress_bar": False,
            "enable_model_summary": False,
        },
        callback={"zero_shot": True},
    )
    assert sweep.rungs == [128, 256, 512, 1024]
    assert "cannot load this checkpoint" in sweep.failed["broken"]
    assert sweep.eliminated_at == {"bad": 128}
    assert sweep.best in ("good", "close") and sweep.ranking[-1] == "bad"
    assert sweep.results["good"].sizes[0] == 1024 and sweep.results["bad"].sizes[0] == 128
    assert "bad (eliminated: P(best)" in sweep.describe()[0]
    assert len(list((tmp_path / "good" / "rectlaw_runs").glob("size_*.json"))) == 7  # 0 + 32..1024, each once


def test_in_process_rounds_reuse_the_subsets_of_randomly_initialised_candidates(tmp_path):
    """A factory building a model from a config (random init, no seed of its own): each round
    starts from the same weights, so only the rung's new size is trained."""
    import lightning as L
    import torch
    from boring import Data

    from lightning_rectlaw import adaptive_sweep

    class Plain(L.LightningModule):
        def __init__(self, width):
            super().__init__()
            self.net = torch.nn.Sequential(
                torch.nn.Linear(8, width), torch.nn.ReLU(), torch.nn.Linear(width, 1)
            )

        def training_step(self, batch, _):
            x, y = batch
            return torch.nn.functional.mse_loss(self.net(x).squeeze(-1), y)

        def validation_step(self, batch, _):
            x, y = batch
            self.log("val_loss", torch.nn.functional.mse_loss(self.net(x).squeeze(-1), y))

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), 1e-2)

    from lightning.pytorch.callbacks import EarlyStopping

    quiet = {"max_epochs": 1, "logger": False, "enable_progress_bar": False, "enable_model_summary": False}
    quiet["callbacks"] = [EarlyStopping("val_loss", patience=3)]  # the user's own, next to the sweep's
    sweep = adaptive_sweep(
        {"a": lambda: Plain(4), "b": lambda: Plain(16)},
        Data(n=2048),
        1024,
        min_size=32,
        results_dir=tmp_path,
        trainer=quiet,
    )
    assert not sweep.failed and set(sweep.results) == {"a", "b"}
    for result in sweep.results.values():  # the last round: every size but the new one reused
        assert result.sizes[0] == 1024 and result.reused == len(result.sizes) - 1


def test_the_in_process_sweep_refuses_to_rank_candidates_scored_on_different_metrics(tmp_path):
    """``monitor="auto"`` resolves per module: one logs val_bpb, the other only val_loss."""
    import torch
    from boring import Boring, Data

    from lightning_rectlaw import adaptive_sweep

    class PerByte(Boring):
        def validation_step(self, batch, batch_idx):
            super().validation_step(batch, batch_idx)
            x, y = batch
            self.log("val_bpb", 3 * torch.nn.functional.mse_loss(self.layer(x).squeeze(-1), y))

    quiet = {"max_epochs": 1, "logger": False, "enable_progress_bar": False, "enable_model_summary": False}
    with pytest.raises(
        ValueError, match=r"(?s)different metrics \(val_bpb: bpb; val_loss: loss\).*monitor='val_bpb'"
    ):
        adaptive_sweep(
            {"bpb": PerByte, "loss": Boring},
            Data(),
            budget=256,
            min_size=32,
            results_dir=tmp_path,
            trainer=quiet,
        )
    assert (tmp_path / "bpb" / "rectlaw_result.json").exists()  # what each measured is kept
