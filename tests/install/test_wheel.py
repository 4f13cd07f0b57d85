"""hwgen as a user installs it: a wheel built from the checkout, in a fresh virtual environment, used
from a directory with no checkout in it, compiles and runs a bundled model (golden model and RVV)."""

from __future__ import annotations

import shutil
import site
import subprocess
import sys
import sysconfig

import numpy as np
import pytest

from ..conftest import DIGITS, ROOT
from ..rvv.rvv_support import needs_rvv

MODEL = DIGITS / "tinycnn_pruned_qdq_s8s8_pc.onnx"


def _run(args, cwd, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, **kw)
    assert proc.returncode == 0, f"{args}: {proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A venv with only the wheel installed; hwgen's dependencies come from the test's own environment."""
    tmp = tmp_path_factory.mktemp("wheel")
    _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", tmp / "dist", ROOT], cwd=tmp)
    wheel = next((tmp / "dist").glob("hwgen-*.whl"))
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", venv], cwd=tmp)
    python = venv / "bin" / "python"
    _run([python, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", wheel], cwd=tmp)
    # The dependencies (numpy, onnx, amaranth, ...) from this environment's site-packages: a plain path,
    # so its .pth files (the checkout's editable install among them) are not processed.
    target = _run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=tmp).stdout.strip()
    deps = [p for p in {sysconfig.get_paths()["purelib"], *site.getsitepackages()} if p]
    (tmp / "venv" / target.split(str(venv) + "/", 1)[1] / "deps.pth").write_text("\n".join(deps) + "\n")
    work = tmp / "elsewhere"
    work.mkdir()
    shutil.copy(MODEL, work / MODEL.name)
    return venv, work


def test_the_wheel_holds_the_templates_and_the_plugin_source(installed):
    venv, work = installed
    code = ("import hwgen, importlib.resources as r; "
            "print(hwgen.__file__); "
            "print(sorted(p.name for p in r.files('hwgen.templates').joinpath('rvv').iterdir())); "
            "print(r.files('hwgen.sim.qemu_plugin').joinpath('insncount.c').is_file())")
    lines = _run([venv / "bin" / "python", "-c", code], cwd=work).stdout.splitlines()
    assert str(venv) in lines[0] and str(ROOT) not in lines[0]   # the installed hwgen, not the checkout
    assert lines[1] == str(["Makefile.j2", "detect.c.j2", "detect.h.j2", "detect_main.c.j2", "kernels.h.j2",
                            "main.c.j2", "model.c.j2", "model.h.j2", "tail.c.j2", "tail.h.j2"])
    assert lines[2] == "True"


def test_the_installed_command_compiles_and_runs_a_model(installed):
    venv, work = installed
    hwgen = venv / "bin" / "hwgen"
    _run([hwgen, "compile", MODEL.name, "-o", "out", "--target", "fpga,rvv", "--rvv-no-count"], cwd=work)
    assert (work / "out" / "rvv" / "kernels.h").read_text().startswith("/*")
    assert (work / "out" / "fpga" / "accelerator.py").is_file()
    np.save(work / "x.npy", np.load(DIGITS / "digits_test.npz")["X"][:4])
    _run([hwgen, "run", MODEL.name, "--input", "x.npy", "--output", "golden.npy"], cwd=work)
    assert np.load(work / "golden.npy").shape == (4, 10)


@needs_rvv
def test_the_installed_command_runs_the_rvv_code(installed):
    venv, work = installed
    np.save(work / "x.npy", np.load(DIGITS / "digits_test.npz")["X"][:4])
    _run([venv / "bin" / "hwgen", "run", MODEL.name, "--input", "x.npy", "--output", "golden.npy"], cwd=work)
    _run([venv / "bin" / "hwgen", "run", MODEL.name, "--input", "x.npy", "--backend", "rvv", "--output", "rvv.npy"],
         cwd=work)
    assert np.array_equal(np.load(work / "rvv.npy"), np.load(work / "golden.npy"))
