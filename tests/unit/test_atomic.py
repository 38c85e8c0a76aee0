from pathlib import Path

import pytest

from genlab.atomic import atomic_directory, atomic_write_json, atomic_write_text


def test_atomic_write_replaces_whole_file(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    atomic_write_text(target, "first")
    atomic_write_text(target, "second")
    assert target.read_text() == "second"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]  # no temporary leftovers


def test_failed_directory_write_keeps_the_old_folder(tmp_path: Path) -> None:
    target = tmp_path / "model"
    with atomic_directory(target) as tmp:
        (tmp / "weights.bin").write_text("old weights")
    with pytest.raises(RuntimeError), atomic_directory(target) as tmp:
        (tmp / "weights.bin").write_text("half-writ")
        raise RuntimeError("crash while saving")
    assert (target / "weights.bin").read_text() == "old weights"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_directory_write_replaces_old_folder(tmp_path: Path) -> None:
    target = tmp_path / "model"
    with atomic_directory(target) as tmp:
        (tmp / "a").write_text("1")
    with atomic_directory(target) as tmp:
        (tmp / "b").write_text("2")
    assert sorted(p.name for p in target.iterdir()) == ["b"]


def test_json_round_trip(tmp_path: Path) -> None:
    import json

    path = atomic_write_json(tmp_path / "x.json", {"rouge1": 0.5, "ok": True})
    assert json.loads(path.read_text()) == {"rouge1": 0.5, "ok": True}


def test_written_files_and_folders_follow_the_umask_not_private_temp_modes(tmp_path: Path) -> None:
    import stat

    from genlab.atomic import UMASK, atomic_directory, atomic_write_text

    written = atomic_write_text(tmp_path / "report.html", "<p>hi</p>")
    assert stat.S_IMODE(written.stat().st_mode) == 0o666 & ~UMASK
    with atomic_directory(tmp_path / "adapter") as folder:
        (folder / "weights").write_bytes(b"1")
    assert stat.S_IMODE((tmp_path / "adapter").stat().st_mode) == 0o777 & ~UMASK
