"""The ``Example::`` blocks of the callback's and the datamodule's docstrings run as written, with
the tiny boring model and data for ``model`` and ``my_datamodule``."""

import inspect
import math
import textwrap

import lightning as L
import pytest
from boring import Boring, Data

from lightning_rectlaw import NestedSubsetDataModule, RectifiedLawCallback


def example(obj) -> str:
    """The code of the ``Example::`` block of ``obj``'s docstring."""
    doc = inspect.getdoc(obj)
    assert doc is not None and "Example::" in doc, f"{obj.__name__} has no Example:: block"
    block = []
    for line in doc.split("Example::", 1)[1].splitlines()[1:]:
        if line.strip() and not line.startswith(" "):
            break  # the next section (Raises:)
        block.append(line)
    return textwrap.dedent("\n".join(block)).strip()


@pytest.mark.parametrize("obj", [RectifiedLawCallback, NestedSubsetDataModule], ids=lambda o: o.__name__)
def test_the_docstring_example_runs(obj, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the example's Trainer logs to ./lightning_logs
    names = {"L": L, "model": Boring(), "my_datamodule": Data(512)}
    names |= {"NestedSubsetDataModule": NestedSubsetDataModule, "RectifiedLawCallback": RectifiedLawCallback}
    exec(compile(example(obj), f"<{obj.__name__} Example>", "exec"), names)
    trainer = names["trainer"]
    (law,) = [cb for cb in trainer.callbacks if isinstance(cb, RectifiedLawCallback)]
    assert law.result.status == "ok" and math.isfinite(law.result.predicted_loss)
    assert isinstance(trainer.datamodule, NestedSubsetDataModule)
