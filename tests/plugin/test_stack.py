"""The plugin in the user's stack: every logger gets the curve, prediction and figure; the
console stays quiet; the user's progress-bar choice is kept."""

import csv
import logging

import lightning as L
import pytest
import yaml
from boring import Boring, Data
from lightning.pytorch.callbacks import RichProgressBar, TQDMProgressBar
from lightning.pytorch.loggers import CSVLogger, Logger, TensorBoardLogger

from lightning_rectlaw import NestedSubsetDataModule, RectifiedLawCallback
from lightning_rectlaw.plugin.loggers import FIGURE_FILE


class WithHparams(Boring):
    def __init__(self, lr=0.05, width=8):
        super().__init__()
        self.save_hyperparameters()


def fit(tmp_path, loggers, results_dir=None, extra=(), **kw):
    law = RectifiedLawCallback(schedule="all", results_dir=results_dir, name="boring")
    trainer = L.Trainer(
        max_epochs=1,
        default_root_dir=tmp_path,
        callbacks=[law, *extra],
        logger=loggers,
        enable_model_summary=False,
        enable_progress_bar=kw.pop("enable_progress_bar", False),
        **kw,
    )
    trainer.fit(WithHparams(), datamodule=NestedSubsetDataModule(Data(), budget="1/2", min_size=64))
    return law, trainer


def csv_rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_every_logger_gets_the_curve_the_prediction_and_the_model_hparams(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tb, cl = TensorBoardLogger(tmp_path / "tb"), CSVLogger(tmp_path / "csv")
    law, _ = fit(tmp_path, [tb, cl])
    sizes = sorted(law.result.sizes)
    # CSV: the curve at step=size, the prediction, the subset runs in their own CSV logs
    rows = csv_rows(tmp_path / "csv/lightning_logs/version_0/metrics.csv")
    curve = {
        int(r["step"]): float(r["rectlaw/test_loss_vs_subset_size"])
        for r in rows
        if r.get("rectlaw/test_loss_vs_subset_size")
    }
    assert sorted(curve) == sizes
    assert curve == pytest.approx(dict(zip(law.result.sizes, law.result.losses)))
    predicted = [float(r["rectlaw/predicted_loss"]) for r in rows if r.get("rectlaw/predicted_loss")]
    assert predicted == pytest.approx([law.result.predicted_loss])
    hparams = yaml.safe_load((tmp_path / "csv/lightning_logs/version_0/hparams.yaml").read_text())
    assert hparams["lr"] == 0.05 and hparams["width"] == 8  # the model's, kept
    assert hparams["rectlaw/method"] == "robust_ats" and hparams["rectlaw/target_size"] == 512
    subsets = sorted(p.name for p in (tmp_path / "csv/lightning_logs/version_0/subsets").iterdir())
    assert subsets == sorted(f"size_{s}" for s in sizes)
    assert any(
        "val_loss" in r
        for r in csv_rows(tmp_path / f"csv/lightning_logs/version_0/subsets/size_{sizes[0]}/metrics.csv")
    )
    # CSV takes no images: the figure is a file beside the result
    assert (tmp_path / "csv/lightning_logs/version_0" / FIGURE_FILE).exists() or any(
        tmp_path.rglob(FIGURE_FILE)
    )
    # TensorBoard: the same curve, the figure as an image, the merged hparams
    ea = EventAccumulator(tb.log_dir, size_guidance={"images": 0, "scalars": 0})
    ea.Reload()
    assert sorted(e.step for e in ea.Scalars("rectlaw/test_loss_vs_subset_size")) == sizes
    assert "rectlaw/fit" in ea.Tags()["images"]
    tb_hparams = yaml.safe_load((tmp_path / "tb/lightning_logs/version_0/hparams.yaml").read_text())
    assert tb_hparams["lr"] == 0.05 and tb_hparams["rectlaw/status"] == "ok"


def test_mlflow_file_store_gets_metrics_params_figure_and_prefixed_subset_runs(tmp_path, monkeypatch):
    pytest.importorskip("mlflow", reason="mlflow not installed (pip install mlflow-skinny)")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # the file store, deprecated but simplest
    from lightning.pytorch.loggers import MLFlowLogger
    from mlflow.tracking import MlflowClient

    uri = (tmp_path / "mlruns").as_uri()
    ml = MLFlowLogger(experiment_name="rectlaw-test", tracking_uri=uri)
    law, _ = fit(tmp_path, [ml], results_dir=tmp_path / "res")
    client = MlflowClient(tracking_uri=uri)
    run = client.get_run(ml.run_id)
    assert run.data.params["lr"] == "0.05"  # the model's hyperparameters...
    assert run.data.params["rectlaw/method"] == "robust_ats"  # ...merged with the fit's
    assert run.data.metrics["rectlaw/predicted_loss"] == pytest.approx(law.result.predicted_loss)
    history = client.get_metric_history(ml.run_id, "rectlaw/test_loss_vs_subset_size")
    assert sorted(m.step for m in history) == sorted(law.result.sizes)
    size = law.result.sizes[0]
    assert client.get_metric_history(ml.run_id, f"subsets/size_{size}/val_loss")  # the subset runs
    artifacts = [a.path for a in client.list_artifacts(ml.run_id, "rectlaw")]
    assert f"rectlaw/{FIGURE_FILE}" in artifacts
    assert (tmp_path / "res" / FIGURE_FILE).exists()
    assert client.get_run(ml.run_id).info.status == "FINISHED"  # finalized once, by the user's Trainer


def test_subset_trainers_print_no_banner_and_the_result_is_one_line(tmp_path, capfd, caplog):
    caplog.set_level(logging.INFO)
    law, _ = fit(tmp_path, [CSVLogger(tmp_path / "csv")])
    out = capfd.readouterr()
    text = out.out + out.err + caplog.text
    assert text.count("GPU available") <= 1  # the user's own Trainer's banner; none per subset
    assert "`Trainer.fit` stopped" not in text
    lines = [r.getMessage() for r in caplog.records if r.name == "lightning_rectlaw"]
    final = [m for m in lines if "predicted loss" in m]
    assert len(final) == 1 and final[0].startswith("[rectlaw] boring: predicted loss")
    assert str(law.result.target_size) in final[0]
    assert text.count(final[0]) == 1  # printed once


def test_one_tqdm_bar_over_the_subsets(tmp_path, capfd):
    law, _ = fit(tmp_path, [], extra=[TQDMProgressBar()], enable_progress_bar=True)
    err = capfd.readouterr().err
    assert "[rectlaw] boring" in err
    assert "Epoch" not in err and "Validation" not in err  # no Lightning bar per subset run
    total = sum(law.result.sizes)  # one epoch each: the bar ends at every example trained
    assert f"{total}/{total}" in err


def test_progress_lines_draw_no_bar_and_name_the_candidate_per_subset(tmp_path, capfd, caplog):
    """Jobs side by side in one terminal (joblib): whole named lines, no bar to draw over."""
    caplog.set_level(logging.INFO)
    law = RectifiedLawCallback(schedule="all", name="boring", progress="lines")
    trainer = L.Trainer(
        max_epochs=1,
        callbacks=[law, TQDMProgressBar()],
        logger=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(Boring(), datamodule=NestedSubsetDataModule(Data(), budget="1/2", min_size=64))
    err = capfd.readouterr().err
    assert "examples" not in err and "ex/s" not in err  # no subset bar (the user's Trainer stops at once)
    lines = [r.getMessage() for r in caplog.records if r.name == "lightning_rectlaw"]
    n = len(law.result.sizes)
    per_subset = [m for m in lines if m.startswith("[rectlaw] boring subset ")]
    heads = [m.split(",")[0] for m in per_subset]
    assert heads == [f"[rectlaw] boring subset {i}/{n} ({s})" for i, s in enumerate(law.result.sizes, 1)]
    assert "left" not in per_subset[0] and all("left" in m for m in per_subset[1:])  # from the runs so far


def test_an_unknown_progress_style_is_refused():
    with pytest.raises(ValueError, match="`progress` must be one of auto, lines"):
        RectifiedLawCallback(progress="bars")


def test_a_rich_progress_bar_is_kept(tmp_path, monkeypatch):
    pytest.importorskip("rich")
    from lightning_rectlaw.plugin import console

    styles = []
    real = console.SubsetProgress.__init__

    def spy(self, style, name=None):
        styles.append(style)
        real(self, style, name)

    monkeypatch.setattr(console.SubsetProgress, "__init__", spy)
    bar = RichProgressBar()
    law = RectifiedLawCallback(schedule="all")
    trainer = L.Trainer(
        max_epochs=1,
        callbacks=[law, bar],
        logger=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(Boring(), datamodule=NestedSubsetDataModule(Data(), budget="1/2", min_size=64))
    assert styles == ["rich"]
    assert trainer.progress_bar_callback is bar  # the user's bar is the user's Trainer's, untouched
    assert law.result.status == "ok"


class Recording(Logger):
    """A user's own logger (W&B-like: it takes images through ``log_image``)."""

    def __init__(self):
        super().__init__()
        self.metrics, self.params, self.images, self.finalized = [], {}, [], []

    @property
    def name(self):
        return "mine"

    @property
    def version(self):
        return 0

    def log_metrics(self, metrics, step=None):
        self.metrics.append((dict(metrics), step))

    def log_hyperparams(self, params, *args, **kwargs):
        self.params.update(dict(params))

    def log_image(self, key, images, **kwargs):
        self.images.append((key, list(images)))

    def finalize(self, status):
        self.finalized.append(status)


def test_any_logger_gets_the_curve_merged_hparams_the_figure_and_prefixed_subset_runs(tmp_path):
    mine = Recording()
    law, _ = fit(tmp_path, [mine])
    curve = {
        step: m["rectlaw/test_loss_vs_subset_size"]
        for m, step in mine.metrics
        if "rectlaw/test_loss_vs_subset_size" in m
    }
    assert curve == pytest.approx(dict(zip(law.result.sizes, law.result.losses)))
    assert mine.params["lr"] == 0.05 and mine.params["rectlaw/method"] == "robust_ats"  # merged
    ((key, (path,)),) = mine.images
    assert key == "rectlaw/fit" and path.endswith(FIGURE_FILE)
    size = law.result.sizes[-1]
    assert any(f"subsets/size_{size}/val_loss" in m for m, _ in mine.metrics)  # the subset runs, prefixed
    assert mine.finalized == ["success"]  # once, by the user's Trainer; never by a subset run
