"""Figures compose (``plot(ax=...)``, as Lightning's learning-rate finder's does) and their loss
axis reads as numbers."""

from pathlib import Path

from lightning_rectlaw import LossTable, select

DATA = Path(__file__).resolve().parents[2] / "data"


def test_plots_draw_into_the_axes_they_are_given():
    from matplotlib.figure import Figure

    table = LossTable.read_csv(DATA / "zoo_cross.csv")
    fig = Figure()
    left, right = fig.subplots(1, 2)
    assert table.plot(ax=left) is fig
    assert select(table, budget="1/8").plot(ax=right) is fig
    assert left.lines and right.collections  # both drew into the given axes
    assert len(fig.axes) == 2  # and added none


def test_the_loss_axis_reads_plain_numbers():
    table = LossTable.read_csv(DATA / "demo_losses.csv")
    fig = table.plot()
    fig.canvas.draw()
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels(minor=True) + fig.axes[0].get_yticklabels()]
    assert labels and not any("times" in t or "^" in t for t in labels)
    assert any(t in ("2", "3", "4", "5") for t in labels)
