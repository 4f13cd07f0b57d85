"""`hwgen run OUT --backend board`: the host side of the UART bridge, against a board stand-in.

The stand-in is a TCP server (pyserial opens it as `socket://`) that speaks the bridge's wire format
(`hwgen.synth.board`: words as whole little-endian bytes, one tensor in, then its outputs out) and
computes with the compile output's own Verilated accelerator, word for word. So the bytes the host
sends and decodes are checked against the RTL; the bridge's bytes against the UART are checked in
tests/synth/test_board.py.
"""

import shutil
import socket
import threading
from pathlib import Path

import numpy as np
import pytest

from hwgen.backends.fpga import load_output
from hwgen.sim.verilator import from_limbs, to_limbs
from hwgen.synth.board import bytes_per_word, bytes_to_words, words_to_bytes
from tests.conftest import run_cli

pytestmark = [pytest.mark.cosim, pytest.mark.skipif(shutil.which("verilator") is None,
                                                    reason="verilator not found on PATH (apt-get install verilator)")]

DIGITS = Path(__file__).resolve().parents[3] / "examples" / "models" / "digits"
TINY = DIGITS / "tinycnn_fp32_qdq_s8s8_pc.onnx"


class StandInBoard:
    """Serves one connection: reads a tensor's input bytes, answers with the accelerator's output bytes."""

    def __init__(self, out: Path, answer: bool = True):
        self.loaded = load_output(out)
        accelerator = self.loaded.accelerator
        self.model, self.mux = accelerator.model, accelerator.mux
        x = self.loaded.graph.tensor(self.loaded.graph.inputs[0])
        self.in_width = x.dtype.bits * self.loaded.plan.input_lanes
        self.in_bytes = x.size // self.loaded.plan.input_lanes * bytes_per_word(self.in_width)
        self.answer, self.tensors = answer, 0
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = f"socket://127.0.0.1:{self.server.getsockname()[1]}"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        conn, _ = self.server.accept()
        with conn:
            pending = b""
            while chunk := conn.recv(65536):
                pending += chunk
                while len(pending) >= self.in_bytes:
                    data, pending = pending[:self.in_bytes], pending[self.in_bytes:]
                    self.tensors += 1
                    if self.answer:
                        conn.sendall(self._compute(data))

    def _compute(self, data: bytes) -> bytes:
        words = to_limbs(bytes_to_words(data, self.in_width), self.in_width)
        result = self.model.run(words, self.mux.words_per_sample, max_cycles=10_000_000, reset=self.tensors == 1)
        return words_to_bytes(from_limbs(result.limbs), self.mux.width)


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    out = tmp_path_factory.mktemp("board") / "out"
    from hwgen.cli import main
    assert main(["compile", str(TINY), "-o", str(out), "--target", "fpga", "--arch", "sequential",
                 "--multipliers", "4", "--weights", "qspi"]) == 0
    return out


def test_a_board_gives_the_golden_outputs(compiled, tmp_path, capsys):
    x = np.random.default_rng(3).random((3, 1, 8, 8), dtype=np.float32)   # three images, float as the model takes
    np.save(tmp_path / "x.npy", x)
    board = StandInBoard(compiled)
    code, out, err = run_cli(capsys, "run", compiled, "--backend", "board", "--port", board.port, "--input",
                             tmp_path / "x.npy", "--check", "--output", tmp_path / "y.npy")
    assert code == 0, err
    assert "3 sample(s) on board equal to the golden model, bit for bit" in err
    assert board.tensors == 3
    code, _, err = run_cli(capsys, "run", compiled, "--input", tmp_path / "x.npy", "--output", tmp_path / "g.npy")
    assert code == 0, err
    assert np.array_equal(np.load(tmp_path / "y.npy"), np.load(tmp_path / "g.npy"))


def test_a_silent_board_is_a_clear_error(compiled, tmp_path, capsys):
    np.save(tmp_path / "x.npy", np.zeros((1, 1, 8, 8), dtype=np.float32))
    board = StandInBoard(compiled, answer=False)
    code, _, err = run_cli(capsys, "run", compiled, "--backend", "board", "--port", board.port, "--input",
                           tmp_path / "x.npy", "--timeout", "0.5")
    assert code == 2
    assert err.strip().endswith("is the bitstream loaded (and, for a flash design, weights.bin at its address), and "
                                "the baud rate the one it was built for?")
    assert f"{board.port}: 0 of the" in err and "Traceback" not in err


def test_board_options_are_checked(compiled, tmp_path, capsys):
    np.save(tmp_path / "x.npy", np.zeros((1, 1, 8, 8), dtype=np.float32))
    code, _, err = run_cli(capsys, "run", TINY, "--backend", "board", "--port", "/dev/null", "--input",
                           tmp_path / "x.npy")
    assert code == 2 and "--backend board runs a compile output OUT on a board, at --port" in err
    code, _, err = run_cli(capsys, "run", compiled, "--backend", "rtl", "--port", "/dev/null", "--input",
                           tmp_path / "x.npy")
    assert code == 2 and "--port is for --backend board" in err
    code, _, err = run_cli(capsys, "run", compiled, "--backend", "board", "--port", tmp_path / "no-such-tty",
                           "--input", tmp_path / "x.npy")
    assert code == 2 and f"{tmp_path / 'no-such-tty'}: cannot open the serial port" in err
