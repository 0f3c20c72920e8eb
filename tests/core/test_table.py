import numpy as np
import pytest

from lightning_rectlaw.core.table import LossTable, TableError

CSV = """config name,0,200,400,800,size,family
a,4.0,3.0,2.9,2.8,100,X
b,5.0,3.5,,3.0,200,Y
"""


def test_csv_round_trip_keeps_every_column(tmp_path):
    t = LossTable.from_csv_text(CSV)
    assert t.names == ("a", "b")
    assert t.sizes.tolist() == [200, 400, 800]
    assert np.isnan(t.losses[1, 1])
    path = tmp_path / "out.csv"
    t.write_csv(path)
    back = LossTable.read_csv(path)
    assert back.names == t.names and back.families == ("X", "Y")
    np.testing.assert_array_equal(back.losses, t.losses)
    np.testing.assert_array_equal(back.zero_shot, t.zero_shot)
    np.testing.assert_array_equal(back.num_params, t.num_params)
    assert path.read_text().splitlines()[0] == "config name,0,200,400,800,size,family"
    assert not list(tmp_path.glob(".*.tmp"))  # atomic write leaves no temp file


def test_reads_the_paper_tables(benchmark_dir):
    t = LossTable.read_csv(benchmark_dir / "flan.csv")
    assert len(t) == 30 and t.max_size == 1638400 and t.sizes[0] == 200
    assert t.zero_shot is not None and t.num_params is not None


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", "empty"),
        ("config name,0,200,size\na,4,x,10\n", r"row 2 \('a'\), column '200': 'x' is not a number"),
        ("config name,0,200,size\na,4,3\n", "row 2: 3 cells but the header has 4"),
        ("config name,0,200,banana\na,4,3,1\n", "header column 4 'banana'"),
        ("config name,0,200,400\na,4,3,-1\n", "finite and positive"),
        ("config name,0,200,400\na,4,3,inf\n", "finite and positive"),
        ("config name,0,200,400\na,4,3,2\na,4,3,2\n", "unique"),
        ("config name,0,size\na,4,10\n", "no subset-size columns"),
        ("0,200,400\n4.0,3.0,2.9\n", r"first column must hold the candidate names .* its header is '0'"),
        # in a comma-separated file a comma inside a number may be a thousands separator
        ('config name,200,400\na,"3,1",2.9\n', r"'3,1' is not a number"),
    ],
)
def test_bad_csv_names_the_problem(text, match):
    with pytest.raises(TableError, match=match):
        LossTable.from_csv_text(text)


@pytest.mark.parametrize(
    "export",
    [
        pytest.param(
            CSV.replace(",", ";").replace("3.0", "3,0").replace("2.9", "2,9"), id="semicolons, decimal commas"
        ),
        pytest.param(CSV.replace(",", "\t"), id="tabs"),
        pytest.param("\ufeff" + CSV.replace("\n", "\r\n"), id="byte-order mark, CRLF"),
        pytest.param(CSV.replace("\n", ",\n"), id="trailing comma on every line"),
        pytest.param(CSV.replace("family\n", "family,,\n"), id="trailing commas on the header"),
    ],
)
def test_spreadsheet_exports_of_a_table_read_as_the_table(export):
    """What a spreadsheet writes when a user saves the table: the same table, not an error."""
    t, want = LossTable.from_csv_text(export), LossTable.from_csv_text(CSV)
    assert t.names == want.names and t.families == want.families
    np.testing.assert_array_equal(t.losses, want.losses)
    np.testing.assert_array_equal(t.zero_shot, want.zero_shot)


def test_unreadable_file_names_the_path(tmp_path):
    with pytest.raises(TableError, match="cannot read loss table"):
        LossTable.read_csv(tmp_path / "missing.csv")
    binary = tmp_path / "model.bin"
    binary.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(TableError, match=r"'.*model\.bin' is not a text CSV file"):
        LossTable.read_csv(binary)
    nul = tmp_path / "zeros.csv"
    nul.write_bytes(b"config name,200\x00\x00\n")
    with pytest.raises(TableError, match="zeros.csv' is a binary file"):
        LossTable.read_csv(nul)


def test_nan_cells_are_missing_runs_like_empty_cells():
    t = LossTable.from_csv_text("config name,200,400\na,3.0,nan\nb,3.1,\n")
    assert np.isnan(t.losses[:, 1]).all()


def test_budget_resolution():
    t = LossTable.from_csv_text(CSV)
    assert t.resolve_budget("1/2") == 400
    assert t.resolve_budget(0.25) == 200
    assert t.resolve_budget("400") == 400
    with pytest.raises(TableError, match="larger than the largest subset"):
        t.resolve_budget(1600)
    with pytest.raises(TableError, match="smaller than the smallest subset"):
        t.resolve_budget("1/8")
    with pytest.raises(TableError, match="must be positive"):
        t.resolve_budget("-1")
    with pytest.raises(TableError, match="not a ratio"):
        t.resolve_budget("lots")
