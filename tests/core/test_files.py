"""Results are written atomically, with the permissions the user's umask gives any new file."""

import os
import stat

import pytest

from lightning_rectlaw.core.files import atomic_write_text


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_a_written_file_respects_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        atomic_write_text(tmp_path / "sub" / "result.json", "{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "sub" / "result.json").stat().st_mode) == mode
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["result.json"]  # no temp file left


def test_a_failed_write_leaves_the_old_file_whole(tmp_path):
    target = tmp_path / "result.json"
    target.write_text("old")

    class Boom(str):
        def encode(self, *args, **kwargs):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write_text(target, Boom("new"))
    assert target.read_text() == "old"
