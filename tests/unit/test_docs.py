"""The guides' code and commands run as shown: docs/own-model.md (quantize, compile, run, bench,
sweep) and docs/rvv.md (the firmware example built for a bare-metal target)."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess

import pytest

from hwgen.cli import main
from hwgen.rvv.measure import constant_bytes
from tests.conftest import PERSON, ROOT
from tests.rvv.rvv_support import needs_rvv


def blocks(doc: str, language: str) -> list[str]:
    text = (ROOT / "docs" / doc).read_text()
    return re.findall(rf"^```{language}\n(.*?)^```", text, flags=re.S | re.M)


def commands(doc: str, program: str) -> list[list[str]]:
    return [shlex.split(line) for block in blocks(doc, "sh") for line in block.splitlines()
            if line.startswith(program + " ")]


def test_own_model_guide(tmp_path, monkeypatch, capsys):
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    (tmp_path / "build" / "own").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    (code,) = blocks("own-model.md", "python")
    exec(compile(code, "docs/own-model.md", "exec"), {})   # noqa: S102 - the guide's own code
    assert (tmp_path / "build" / "own" / "tinycnn_qdq.onnx").is_file()
    hwgen = commands("own-model.md", "hwgen")
    assert [c[1] for c in hwgen] == ["report", "compile", "run", "bench", "sweep"]
    for argv in hwgen:
        assert main(argv[1:]) == 0, argv
    printed = capsys.readouterr()
    assert "4 sample(s) on rvv equal to the golden model" in printed.err
    assert "| top1 |" in printed.out
    rows = (tmp_path / "build" / "own" / "experiments.csv").read_text().splitlines()
    assert len(rows) == 1 + 2 + 2   # header, bench's two models, sweep's two devices


@needs_rvv
def test_rvv_firmware_guide(tmp_path, capsys):
    out = tmp_path / "OUT"
    assert main(["compile", str(PERSON / "person_detect_qdq.onnx"), "-o", str(out), "--target", "rvv",
                 "--rvv-no-count"]) == 0
    capsys.readouterr()
    (firmware,) = blocks("rvv.md", "c")
    (linker,) = blocks("rvv.md", "ld")
    (tmp_path / "firmware.c").write_text(firmware)
    (tmp_path / "firmware.ld").write_text(linker)
    results = {}
    for argv in commands("rvv.md", "clang-19") + commands("rvv.md", "ld.lld-19") + commands("rvv.md", "llvm-size-19"):
        assert shutil.which(argv[0]), argv[0]
        done = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True)
        assert done.returncode == 0, (argv, done.stderr)
        results[argv[0]] = done.stdout
    sizes = {m[1]: int(m[2]) for m in re.finditer(r"^(\.\w+)\s+(\d+)", results["llvm-size-19"], flags=re.M)}
    from hwgen.backends.rvv import generate_for
    from hwgen.compiler import compile_model

    constants = constant_bytes(generate_for(compile_model(PERSON / "person_detect_qdq.onnx")))
    assert sizes[".rodata"] >= constants > 200_000
    assert sizes[".bss"] >= 55_296
    undefined = subprocess.run(["llvm-nm-19", "-u", "model.o"], cwd=tmp_path, capture_output=True, text=True)
    assert undefined.returncode == 0 and undefined.stdout.strip() == ""


@pytest.mark.parametrize("doc", ["own-model.md", "rvv.md"])
def test_guides_are_linked_from_the_readme(doc):
    assert f"docs/{doc}" in (ROOT / "README.md").read_text()
