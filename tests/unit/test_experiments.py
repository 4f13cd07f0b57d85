"""Experiment tables (`hwgen bench`), sweeps on Dask (`hwgen sweep`) and the plots."""

from __future__ import annotations

import csv
import shutil
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hwgen.errors import InvalidOptionError
from hwgen.experiments import Experiment, ExperimentTable, run_experiment
from hwgen.plots import pareto_front
from hwgen.sweep import SweepOptions, parse_set, points, run_sweep
from tests.conftest import DIGITS, PERSON, run_cli

TINY = DIGITS / "tinycnn_fp32_qdq_s8s8_pc.onnx"          # float input: digits_test.npz's X
PRUNED = DIGITS / "tinycnn_pruned_qdq_s8s8_pc.onnx"
DIGITS_DATA = DIGITS / "digits_test.npz"
#: Columns that depend on when a row was made, not on the experiment.
WHEN = {"date"}


def numbers(row) -> dict:
    return {k: str(v) for k, v in row.items() if k not in WHEN}


def test_accuracy_on_labelled_data_is_onnxruntimes(tmp_path):
    """top-1 on digits_test.npz equals the accuracy onnxruntime measured when the model was made
    (examples/models/digits/results.json: 0.98444)."""
    row = run_experiment(Experiment(TINY, DIGITS_DATA, targets=("fpga",)))
    assert row["metric"] == "top1" and row["samples"] == 450
    assert row["value"] == round(443 / 450, 4)
    assert row["macs"] == 309_248 and row["params"] == 9_930
    assert row["device"] == "ice40-up5k" and row["dsp"] <= 8 and row["inferences_per_s"] > 0


def test_image_directory_with_class_subdirectories(tmp_path):
    """Images in class directories 0/ and 1/ are labelled by them; person_detect gets both right."""
    for label, name in ((0, "no_person.bmp"), (1, "person.bmp")):
        (tmp_path / str(label)).mkdir()
        shutil.copy(PERSON / name, tmp_path / str(label) / name)
    row = run_experiment(Experiment(PERSON / "person_detect_qdq.onnx", tmp_path, targets=()))
    assert (row["metric"], row["value"], row["samples"]) == ("top1", 1.0, 2)
    (tmp_path / "1" / "person.bmp").rename(tmp_path / "0" / "person.bmp")  # now mislabelled
    row = run_experiment(Experiment(PERSON / "person_detect_qdq.onnx", tmp_path, targets=()))
    assert row["value"] == 0.5


def test_without_data_it_measures_agreement_with_onnxruntime():
    row = run_experiment(Experiment(PRUNED, targets=()))
    assert row["metric"] == "top1_agree_ort" and row["value"] == 1.0 and row["samples"] == 8


def test_bench_appends_rows_and_reuses_them(tmp_path, capsys):
    table = tmp_path / "experiments.csv"
    args = ("bench", TINY, PRUNED, "--data", DIGITS_DATA, "--targets", "fpga", "--table", table)
    code, out, _ = run_cli(capsys, *args)
    assert code == 0, out
    first = ExperimentTable.open(table).rows
    assert [r["model"] for r in first] == [str(TINY), str(PRUNED)]
    assert "| top1 | 0.9844 |" in out
    code, out2, _ = run_cli(capsys, *args)   # the same experiments: rows reused, the table unchanged
    assert code == 0 and ExperimentTable.open(table).rows == first and out2 == out
    code, _, _ = run_cli(capsys, *args, "--rerun")   # measured again: the same numbers
    again = ExperimentTable.open(table).rows
    assert len(again) == 4 and [numbers(r) for r in again[2:]] == [numbers(r) for r in first]


def test_a_failed_experiment_is_a_row_with_its_error(tmp_path, capsys):
    table = tmp_path / "t.csv"
    code, out, err = run_cli(capsys, "bench", TINY, "--targets", "fpga", "--multipliers", "8", "--table", table)
    assert code == 1 and "failed" in err
    (row,) = ExperimentTable.open(table).rows
    assert row["status"] == "failed" and "does not fit ice40-up5k" in row["error"]


def test_the_table_is_never_a_file_hwgen_did_not_write(tmp_path, capsys):
    notes = tmp_path / "notes.csv"
    notes.write_text("name,score\nmine,1\n")
    code, _, err = run_cli(capsys, "bench", TINY, "--targets", "fpga", "--table", notes)
    assert code == 2 and "not an hwgen experiment table" in err and err.count("\n") == 1
    assert notes.read_text() == "name,score\nmine,1\n"


def test_an_interrupted_save_leaves_the_table_as_it_was(tmp_path, monkeypatch):
    table = ExperimentTable.open(tmp_path / "t.csv")
    table.add({"experiment": "a", "status": "ok", "value": 1})
    before = (tmp_path / "t.csv").read_bytes()

    def interrupted(*_):
        raise KeyboardInterrupt
    monkeypatch.setattr("hwgen.experiments.os.replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        table.add({"experiment": "b", "status": "ok", "value": 2})
    assert (tmp_path / "t.csv").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.csv"]


def test_sweep_on_a_local_dask_cluster(tmp_path, capsys):
    """Four points on two Dask workers: the same rows as one by one, a failure recorded, and a second
    sweep finds them all in the table."""
    base = Experiment(PRUNED, targets=("fpga",))
    sets = [parse_set("device=ice40-up5k,ecp5-25k"), parse_set("multipliers=auto,2")]
    table = ExperimentTable.open(tmp_path / "sweep.csv")
    start = time.monotonic()
    rows = run_sweep(points(base, sets), table, SweepOptions(workers=2))
    parallel = time.monotonic() - start
    one_by_one = [run_experiment(p) for p in points(base, sets)]
    assert [numbers(r) for r in rows] == [numbers(r) for r in one_by_one]
    assert [r["device"] for r in rows] == ["ice40-up5k", "ice40-up5k", "ecp5-25k", "ecp5-25k"]
    assert all(r["status"] == "ok" for r in rows) and parallel > 0
    with open(tmp_path / "sweep.csv") as f:
        assert len(list(csv.DictReader(f))) == 4
    code, out, _ = run_cli(capsys, "sweep", PRUNED, "--targets", "fpga", "--set", "device=ice40-up5k,ecp5-25k",
                           "--set", "multipliers=auto,2", "--set", "rounding=rne", "--table", tmp_path / "sweep.csv",
                           "--workers", "2")
    assert code == 0 and "4 point(s): 0 run, 4 from" in out


def test_sweep_records_a_failed_point_and_goes_on(tmp_path, capsys):
    code, out, err = run_cli(capsys, "sweep", TINY, "--targets", "fpga", "--set", "multipliers=1,8",
                             "--table", tmp_path / "t.csv", "--workers", "2")
    assert code == 1 and "1 failed" in out
    rows = ExperimentTable.open(tmp_path / "t.csv").rows
    assert sorted(r["status"] for r in rows) == ["failed", "ok"]


@pytest.mark.parametrize("text", ["multipliers", "colour=red", "multipliers=", "seed=x"])
def test_bad_sweep_options_are_one_line(text):
    with pytest.raises(InvalidOptionError):
        points(Experiment(TINY), [parse_set(text)])


@given(st.lists(st.tuples(st.integers(0, 20), st.integers(0, 20)), min_size=1, max_size=12), st.booleans())
def test_pareto_front(points_, larger):
    front = set(pareto_front(points_, x_larger_better=larger))
    sign = 1 if larger else -1

    def beats(a, b):
        return sign * a[0] >= sign * b[0] and a[1] >= b[1] and (sign * a[0] > sign * b[0] or a[1] > b[1])
    for i, p in enumerate(points_):
        dominated = any(beats(q, p) for q in points_)
        assert (i in front) == (not dominated)


def test_plots_are_deterministic_images(tmp_path, capsys):
    out = tmp_path / "out"
    assert run_cli(capsys, "compile", PRUNED, "-o", out, "--target", "fpga", "--device", "ice40-up5k")[0] == 0
    for name in ("a.png", "b.png"):
        code, text, _ = run_cli(capsys, "report", out, "--plot", tmp_path / name)
        assert code == 0 and f"wrote {tmp_path / name}" in text
    data = (tmp_path / "a.png").read_bytes()
    assert data.startswith(b"\x89PNG") and data == (tmp_path / "b.png").read_bytes()
    code, _, err = run_cli(capsys, "report", out, "--plot", tmp_path / "a.txt")
    assert code == 2 and ".png, .svg or .pdf" in err
    rows = [{"status": "ok", "metric": "top1", "value": v, "inferences_per_s": s, "logic": l, "model": "m.onnx",
             "device": "ice40-up5k", "options": f"multipliers={i}"}
            for i, (v, s, l) in enumerate([(0.9, 10, 1000), (0.95, 5, 2000), (0.8, 20, 500)])]
    from hwgen.plots import bench_plot
    bench_plot(rows, tmp_path / "bench.png")
    assert (tmp_path / "bench.png").read_bytes().startswith(b"\x89PNG")
