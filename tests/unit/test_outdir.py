"""Output directories: hwgen never deletes or overwrites a file it did not write, and never leaves
a half-written output."""

from __future__ import annotations

import json
import os

import pytest

from hwgen.cli import main
from hwgen.errors import InvalidOptionError
from hwgen.outdir import MARKER, OutputDir, update_files, write_file

from ..conftest import DIGITS

TINY = DIGITS / "tinycnn_pruned_qdq_s8s8_pc.onnx"


def compile_(capsys, *args) -> tuple[int, str]:
    code = main(["compile", str(TINY), *map(str, args)])
    return code, capsys.readouterr().err


def snapshot(root) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_a_new_output_is_marked_with_every_file_it_holds(tmp_path, capsys):
    assert compile_(capsys, "-o", tmp_path / "a" / "b" / "out")[0] == 0
    out = tmp_path / "a" / "b" / "out"
    listed = json.loads((out / MARKER).read_text())["files"]
    assert sorted(listed) == sorted(set(snapshot(out)) - {MARKER})
    assert oct(out.stat().st_mode & 0o777) == oct(0o777 & ~_umask())
    assert [p.name for p in (tmp_path / "a" / "b").iterdir()] == ["out"]  # no temporary directory left


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_the_current_directory_full_of_user_files_is_refused(tmp_path, capsys, monkeypatch):
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "data").mkdir()
    before = snapshot(tmp_path)
    monkeypatch.chdir(tmp_path)
    code, err = compile_(capsys, "-o", ".")
    assert code == 2 and err.count("\n") == 1
    assert "not empty and not an earlier hwgen output" in err and "--force" in err
    assert snapshot(tmp_path) == before and sorted(os.listdir(tmp_path)) == ["data", "notes.txt"]


def test_force_writes_beside_user_files_and_removes_none(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    (out / "ir.txt").write_text("a file of mine with a name hwgen writes")
    assert compile_(capsys, "-o", out, "--force")[0] == 0
    assert (out / "notes.txt").read_text() == "mine"
    assert (out / "ir.txt").read_text().startswith("graph ")
    assert "notes.txt" not in json.loads((out / MARKER).read_text())["files"]


def test_recompiling_keeps_user_files_and_replaces_hwgen_files(tmp_path, capsys):
    out = tmp_path / "out"
    assert compile_(capsys, "-o", out, "--target", "rvv", "--rvv-no-count")[0] == 0
    (out / "notes.txt").write_text("mine")
    (out / "rvv" / "my_main.c").write_text("int main(void) { return 0; }\n")
    code, err = compile_(capsys, "-o", out, "--rounding", "rnu")
    assert code == 0
    assert (out / "notes.txt").read_text() == "mine"
    assert (out / "rvv" / "my_main.c").exists()               # the user's file in hwgen's folder stays
    assert not (out / "rvv" / "model.c").exists()             # the earlier compile's rvv/ files are gone
    assert "rnu" in (out / "ir.txt").read_text()
    assert "removed the earlier compile's rvv/" in err
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_a_file_edited_after_hwgen_wrote_it_is_not_overwritten(tmp_path, capsys):
    out = tmp_path / "out"
    compile_(capsys, "-o", out)
    (out / "report.txt").write_text("my edits")
    before = snapshot(out)
    code, err = compile_(capsys, "-o", out)
    assert code == 2 and "report.txt: was changed after hwgen wrote it" in err
    assert snapshot(out) == before
    assert compile_(capsys, "-o", out, "--force")[0] == 0
    assert (out / "report.txt").read_text() != "my edits"


def test_an_edited_file_of_a_target_not_rebuilt_stays(tmp_path, capsys):
    out = tmp_path / "out"
    compile_(capsys, "-o", out, "--target", "rvv", "--rvv-no-count")
    (out / "rvv" / "main.c").write_text("/* my changes */\n")
    assert compile_(capsys, "-o", out)[0] == 0
    assert (out / "rvv" / "main.c").read_text() == "/* my changes */\n"
    assert not (out / "rvv" / "model.c").exists()


@pytest.mark.parametrize("case", ["existing file", "parent is a file"])
def test_a_file_in_the_way_is_one_line(case, tmp_path, capsys):
    (tmp_path / "f").write_text("keep me")
    target = tmp_path / "f" if case == "existing file" else tmp_path / "f" / "out"
    code, err = compile_(capsys, "-o", target)
    assert code == 2 and err.count("\n") == 1
    assert "exists and is not a directory" in err or "is not a directory" in err
    assert (tmp_path / "f").read_text() == "keep me" and sorted(os.listdir(tmp_path)) == ["f"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_a_read_only_parent_is_one_line(tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        code, err = compile_(capsys, "-o", ro / "out")
        assert code == 2 and "permission denied" in err and err.count("\n") == 1
    finally:
        ro.chmod(0o755)


def test_a_failure_while_writing_touches_nothing(tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    compile_(capsys, "-o", out)
    (out / "notes.txt").write_text("mine")
    before = snapshot(out)

    def broken(*args, **kwargs):
        raise InvalidOptionError("the backend failed")

    import hwgen.backends.rvv as rvv
    monkeypatch.setattr(rvv, "emit", broken)
    code, err = compile_(capsys, "-o", out, "--target", "rvv")
    assert code == 2 and "the backend failed" in err
    assert snapshot(out) == before
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in out.iterdir()
                                                           if not p.name.startswith(".hwgen-staging"))


def test_in_place_work_records_its_files_and_keeps_the_users(tmp_path):
    d = tmp_path / "synth"
    with OutputDir.prepare(d).in_place() as path:
        (path / "top.bin").write_bytes(b"1")
        (path / "log.txt").write_text("first")
    (d / "mine.txt").write_text("mine")
    (d / "log.txt").write_text("edited")
    with OutputDir.prepare(d).in_place() as path:
        assert not (path / "top.bin").exists()       # hwgen's own earlier product: removed first
        assert (path / "log.txt").read_text() == "edited"
        (path / "top.bin").write_bytes(b"2")
    files = json.loads((d / MARKER).read_text())["files"]
    assert sorted(files) == ["top.bin"] and (d / "mine.txt").exists()


def test_update_refuses_an_edited_file(tmp_path):
    with OutputDir.prepare(tmp_path / "o").in_place() as path:
        (path / "report.json").write_text("{}")
    update_files(tmp_path / "o", {"report.json": b'{"a": 1}'})
    assert (tmp_path / "o" / "report.json").read_text() == '{"a": 1}'
    (tmp_path / "o" / "report.json").write_text("mine")
    with pytest.raises(InvalidOptionError, match="changed after hwgen wrote it"):
        update_files(tmp_path / "o", {"report.json": b"{}"})


def test_a_corrupt_marker_is_one_line(tmp_path, capsys):
    out = tmp_path / "out"
    compile_(capsys, "-o", out)
    (out / MARKER).write_text("{not json")
    code, err = compile_(capsys, "-o", out)
    assert code == 2 and "not a marker hwgen can read" in err and err.count("\n") == 1


def test_single_files_are_written_atomically(tmp_path):
    write_file(tmp_path / "a.txt", "one")
    write_file(tmp_path / "a.txt", b"two")
    assert (tmp_path / "a.txt").read_text() == "two" and os.listdir(tmp_path) == ["a.txt"]
    with pytest.raises(InvalidOptionError, match="is a directory"):
        write_file(tmp_path, "x")
    with pytest.raises(InvalidOptionError, match="not a directory"):
        write_file(tmp_path / "a.txt" / "b", "x")
