"""The registry declares each method's options once; every entry point reads them from there."""

import dataclasses
import inspect
import json
from contextlib import redirect_stdout
from io import StringIO
from pathlib import Path

import numpy as np
import pytest

from lightning_rectlaw.core.law import law_value
from lightning_rectlaw.core.table import LossTable
from lightning_rectlaw.selection import METHODS, Method, select
from lightning_rectlaw.selection.options import Option, real
from lightning_rectlaw.selection.registry import all_options

SIZES = 200.0 * 2 ** np.arange(10)
CONF = Path(__file__).resolve().parents[2] / "lightning_rectlaw" / "app" / "conf"


def _table() -> LossTable:
    params = [(800, 150, 0.55, 1.2), (300, 40, 0.4, 0.9), (2000, 900, 0.7, 1.0)]
    losses = np.array([law_value(SIZES, B, b, E, dl) for B, dl, b, E in params])
    return LossTable(("a", "b", "c"), SIZES, losses)


SHIFT = real("shift", 0.0, "added to every score (a test's option)", positive=False)


@pytest.fixture
def shifted(monkeypatch):
    """A method registered with one option of its own: AtS with every score raised by ``shift``."""
    ats = METHODS["ats"]

    def scorer(table, budget, target, level, *, shift, **options):
        return [
            dataclasses.replace(c, score=c.score + shift)
            for c in ats.scorer(table, budget, target, level, **options)
        ]

    monkeypatch.setitem(
        METHODS,
        "shifted",
        Method(scorer, label="Shifted", description="AtS + shift", options=(*ats.options, SHIFT)),
    )
    yield "shifted"
    monkeypatch.undo()
    from lightning_rectlaw.app.config import register_configs

    register_configs()  # the app's schema without the test's method


def test_a_new_option_is_one_registry_entry_set_through_the_callback_select_and_the_app(shifted, tmp_path):
    from lightning_rectlaw import RectifiedLawCallback
    from lightning_rectlaw.cli import main

    assert select(_table(), shifted, budget="1/8", shift=0.5).candidates[0].score == pytest.approx(
        select(_table(), "ats", budget="1/8").candidates[0].score + 0.5
    )
    # the callback
    assert RectifiedLawCallback(shifted, shift=0.5, k=4).options == {"shift": 0.5, "k": 4}
    with pytest.raises(ValueError, match="`shift` must be a number >= 0, got -1"):
        RectifiedLawCallback(shifted, shift=-1)
    with pytest.raises(ValueError, match=r"`method='ats'` has no option\(s\) \['shift'\]"):
        RectifiedLawCallback("ats", shift=0.5)
    # rectlaw select
    path = tmp_path / "t.csv"
    _table().write_csv(path)
    out = StringIO()
    with redirect_stdout(out):
        assert (
            main(
                [
                    "select",
                    str(path),
                    "--budget",
                    "1/8",
                    "--method",
                    shifted,
                    "--shift",
                    "0.5",
                    "--format",
                    "json",
                ]
            )
            == 0
        )
    scores = [c["score"] for c in json.loads(out.getvalue())["candidates"]]
    assert scores == pytest.approx(
        sorted(c.score + 0.5 for c in select(_table(), "ats", budget="1/8").candidates)
    )
    # the app: a key of the schema, given to the callback of the jobs that choose the method
    from hydra import compose, initialize_config_dir

    from lightning_rectlaw.app.config import register_configs
    from lightning_rectlaw.app.job import build_callback

    register_configs()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
        cfg = compose("config", overrides=[f"rectlaw.method={shifted}", "rectlaw.shift=0.5"])
        bad = compose("config", overrides=[f"rectlaw.method={shifted}", "rectlaw.shift=-2"])
    assert build_callback(cfg, tmp_path).options == {"k": 3, "delta": 5.0, "shift": 0.5}
    with pytest.raises(ValueError, match="rectlaw.shift: `shift` must be a number >= 0"):
        build_callback(bad, tmp_path)


def test_robust_ats_screening_is_set_from_the_app_and_the_command_line(tmp_path):
    from hydra import compose, initialize_config_dir

    from lightning_rectlaw.app.job import build_callback
    from lightning_rectlaw.cli import main

    with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
        cfg = compose("config", overrides=["rectlaw.threshold=12", "rectlaw.floor=0.2"])
    options = build_callback(cfg, tmp_path).options
    assert (options["threshold"], options["floor"]) == (12.0, 0.2)
    with pytest.raises(SystemExit):
        main(["select", "x.csv", "--budget", "1/8", "--floor", "-1"])  # refused by the option's check


def test_one_declaration_per_option_name_and_scorers_take_exactly_their_options():
    declared = all_options()
    for name, entry in METHODS.items():
        assert len({o.name for o in entry.options}) == len(entry.options), name
        params = inspect.signature(entry.scorer).parameters.values()
        named = {p.name for p in params if p.kind is p.KEYWORD_ONLY}
        rest = any(p.kind is p.VAR_KEYWORD for p in params)
        assert named <= set(entry.defaults) and (rest or named == set(entry.defaults)), name
        assert all(declared[o.name] is o for o in entry.options)
        assert all(o.check(o.default) == o.default for o in entry.options)  # defaults are valid
    assert {"threshold", "floor"} <= set(METHODS["robust_ats"].defaults)


def test_a_renamed_option_still_works_with_a_warning():
    with pytest.warns(DeprecationWarning, match="`seed` is now `prob_seed`"):
        old = select(_table(), "pooled", budget="1/8", seed=1)
    assert old.ranking == select(_table(), "pooled", budget="1/8", prob_seed=1).ranking


def test_option_parse_reads_the_command_line_types():
    assert real("x", 1.0, "").parse("2.5") == 2.5
    flag = Option("b", False, "", valid=lambda v: isinstance(v, bool), must_be="True or False")
    assert flag.parse("true") is True and flag.parse("0") is False
    with pytest.raises(ValueError, match="`x` must be a positive number, got 'abc'"):
        real("x", 1.0, "").parse("abc")


def test_an_option_declared_twice_or_named_as_an_app_key_is_refused(monkeypatch):
    from lightning_rectlaw.app.config import rectlaw_schema

    ats = METHODS["ats"]
    other_k = real("k", 4.0, "another k")
    monkeypatch.setitem(
        METHODS, "twice", Method(ats.scorer, label="Twice", description="-", options=(other_k,))
    )
    with pytest.raises(ValueError, match="`k` is declared twice \\('twice'.s differs\\): declare it once"):
        all_options()
    seed = real("seed", 1.0, "clashes with rectlaw.seed")
    monkeypatch.setitem(METHODS, "twice", Method(ats.scorer, label="Twice", description="-", options=(seed,)))
    with pytest.raises(
        ValueError, match=r"method option\(s\) \['seed'\] clash with the app's own `rectlaw` keys"
    ):
        rectlaw_schema()
