"""One default per setting: the callback, the app's schema, ``adaptive_sweep`` and the sweeper
agree with the registry (method options) and with ``RuleSettings`` (the adaptive rule); where a
context needs another value, the exception is named here and its reason is in the code."""

import dataclasses
import inspect
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from lightning_rectlaw import NestedSubsetDataModule, RectifiedLawCallback, adaptive_sweep
from lightning_rectlaw.app.adaptive_sweeper import RectlawSweeperConf
from lightning_rectlaw.core.budget import MIN_SIZE, SWEEP_MIN_SIZE
from lightning_rectlaw.schedule.rule import RuleSettings
from lightning_rectlaw.selection import DEFAULT_METHOD
from lightning_rectlaw.selection.registry import all_options

CONF = Path(__file__).resolve().parents[1] / "lightning_rectlaw" / "app" / "conf"
#: Settings whose default differs on purpose, and where the reason is written.
EXCEPTIONS = {
    "zero_shot": "app/config.py: the summary's plots and ourfit read it; a sweep measures it once per job",
    "min_size": "core/budget.py SWEEP_MIN_SIZE: a sweep's jobs skip subsets of a few dozen examples",
}


def _defaults(fn) -> dict:
    return {p.name: p.default for p in inspect.signature(fn).parameters.values() if p.default is not p.empty}


def _app() -> dict:
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
        return OmegaConf.to_container(compose("config").rectlaw, resolve=True)


def test_the_app_the_callback_and_the_in_process_sweep_share_the_registrys_defaults():
    app, callback = _app(), _defaults(RectifiedLawCallback)
    for name, option in all_options().items():
        assert app[name] == option.default, name  # the schema and its yaml
        assert name not in callback  # the callback takes the method's options from the registry
    assert app["method"] == callback["method"] == DEFAULT_METHOD
    shared = set(app) & set(callback) - set(EXCEPTIONS)
    assert {"level", "schedule", "monitor", "continue_fit", "checkpoint_every", "progress"} <= shared
    assert all(
        app[k] == callback[k] or (k == "subset_callbacks" and not app[k] and not callback[k]) for k in shared
    )
    assert (app["zero_shot"], callback["zero_shot"]) == (True, False)
    datamodule, sweep = _defaults(NestedSubsetDataModule), _defaults(adaptive_sweep)
    assert (datamodule["min_size"], app["min_size"], sweep["min_size"]) == (
        MIN_SIZE,
        SWEEP_MIN_SIZE,
        SWEEP_MIN_SIZE,
    )
    assert datamodule["seed"] == app["seed"] == sweep["seed"]


def test_the_sweeper_and_the_in_process_sweep_take_the_rules_defaults():
    rule = {f.name: f.default for f in dataclasses.fields(RuleSettings)}
    conf = RectlawSweeperConf()
    assert {name: getattr(conf, name) for name in rule} == rule
    assert (conf.threshold, conf.floor) == (None, None)  # the old spellings: unset unless given
    assert _defaults(adaptive_sweep)["settings"] is None  # None: RuleSettings()
