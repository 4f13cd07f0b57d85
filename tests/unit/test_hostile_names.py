"""ONNX names are data: a model whose every name is hostile compiles to files in which no name is
code, and prints nothing a terminal would obey."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys

import onnx
import pytest

from hwgen import names
from hwgen.cli import main

from ..conftest import DIGITS, ROOT
from ..hostile import PAYLOADS, rename

TINY = DIGITS / "tinycnn_pruned_qdq_s8s8_pc.onnx"
#: A model file name that is itself hostile (it reaches banners, Makefiles and identifiers).
FILE_NAME = 'm"""$(shell touch PWNED_FILE)*\\`x`\n.onnx'


@pytest.fixture(scope="module")
def hostile_output(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hostile")
    model = tmp / FILE_NAME
    onnx.save(rename(onnx.load(TINY)), model)
    out = tmp / "out"
    code = main(["compile", str(model), "-o", str(out), "--target", "fpga,rvv", "--rvv-no-count"])
    assert code == 0
    return tmp, out


def _no_pwned(directory) -> None:
    assert not list(directory.rglob("PWNED*")), "a payload ran"


def test_generated_python_parses_and_runs_no_payload(hostile_output):
    tmp, out = hostile_output
    for name in ("accelerator.py", "test_accelerator.py"):
        tree = ast.parse((out / "fpga" / name).read_text())
        calls = {n.func.id if isinstance(n.func, ast.Name) else getattr(n.func, "attr", "")
                 for n in ast.walk(tree) if isinstance(n, ast.Call)}
        assert not calls & {"__import__", "system", "exec", "eval"}, name
    # Importing the generated top defines the class and runs nothing else.
    proc = subprocess.run([sys.executable, "-c", "import accelerator"], cwd=out / "fpga", capture_output=True,
                          text=True, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr
    _no_pwned(out / "fpga")
    _no_pwned(tmp)


def test_generated_c_and_makefile_hold_names_as_comments(hostile_output):
    tmp, out = hostile_output
    rvv = out / "rvv"
    for path in rvv.glob("*.[ch]"):
        text = path.read_text()
        assert text.isascii(), path.name
        code = re.sub(r"//[^\n]*", "", re.sub(r"/\*.*?\*/", "", text, flags=re.S))
        assert not re.search(r"int\s+pwned", code), path.name  # names may only be parts of identifiers
    if shutil.which("cc"):
        sources = ["model.c", "main.c"] + (["tail.c"] if (rvv / "tail.c").exists() else [])
        proc = subprocess.run(["cc", "-fsyntax-only", "-Wall", "-Werror", "-trigraphs", *sources], cwd=rvv,
                              capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
    if shutil.which("make"):
        proc = subprocess.run(["make", "-n", "scalar"], cwd=rvv, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        assert "PWNED" not in proc.stdout
    _no_pwned(tmp)


def test_verilog_has_no_raw_names(hostile_output):
    _, out = hostile_output
    verilog = next((out / "fpga").glob("*.v")).read_text()
    assert verilog.isascii()
    assert not re.search(r"\bmodule\s+pwned|\$finish", verilog)


def test_printed_report_has_no_control_characters(hostile_output, capsys):
    _, out = hostile_output
    assert main(["report", str(out)]) == 0
    text = capsys.readouterr().out
    assert not re.search("[\x00-\x08\x0b-\x1f\x7f\u202a-\u202e\u2066-\u2069]", text)
    for name in ("report.txt", "ir.txt"):
        assert not re.search("[\x00-\x08\x0b-\x1f\x7f\u202a-\u202e]", (out / name).read_text()), name


def test_errors_about_hostile_names_are_one_safe_line(tmp_path, capsys):
    model = rename(onnx.load(TINY))
    model.graph.node[3].op_type = "NoSuchOp"
    onnx.save(model, tmp_path / "bad.onnx")
    assert main(["compile", str(tmp_path / "bad.onnx"), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("hwgen: error: ")
    assert not re.search("[\x00-\x08\x0b-\x1f\x7f\u202a-\u202e\u2066-\u2069]", err[:-1])
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("payload", PAYLOADS)
def test_each_escape_keeps_its_language_closed(payload):
    assert "\n" not in names.c_comment(payload) and "*/" not in names.c_comment(payload)
    assert "??" not in names.c_comment(payload) and "\\" not in names.c_comment(payload)
    assert '"' not in names.py_comment(payload) and "\n" not in names.py_comment(payload)
    assert ast.literal_eval(names.py_string(payload)) == payload
    assert names.py_string(payload).isascii()
    doc = f'"""{names.py_comment(payload)}"""'
    assert isinstance(ast.literal_eval(doc), str)
    shown = names.terminal(payload)
    assert not re.search("[\x00-\x08\x0a-\x1f\x7f\u202a-\u202e\u2066-\u2069\u200b]", shown)


@pytest.mark.skipif(shutil.which("cc") is None, reason="no host C compiler")
def test_c_string_round_trips_through_a_compiler(tmp_path):
    lines = [f"    {{{names.c_string(p)}, sizeof {names.c_string(p)} - 1}}," for p in PAYLOADS]
    (tmp_path / "s.c").write_text(
        "#include <stdio.h>\nstatic const struct { const char *s; size_t n; } s[] = {\n" + "\n".join(lines)
        + "\n};\nint main(void) { for (unsigned i = 0; i < sizeof s / sizeof *s; i++) "
          "fwrite(s[i].s, 1, s[i].n, stdout), putchar(0); return 0; }\n")
    subprocess.run(["cc", "-trigraphs", "-Wall", "-Werror", "s.c", "-o", "s"], cwd=tmp_path, check=True)
    printed = subprocess.run([str(tmp_path / "s")], capture_output=True, check=True).stdout
    assert printed == b"".join(p.encode() + b"\0" for p in PAYLOADS)
