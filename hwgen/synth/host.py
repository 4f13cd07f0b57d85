"""Runs a compiled accelerator on a board: tensors over the UART bridge of `hwgen synth --board`.

The protocol is the bridge's (`synth.board`): one tensor's input words are sent, each as whole
bytes, least significant first; then all of that tensor's output words are read back the same
way; then the next tensor. The words are the ones co-simulation streams (`sim.rtl.pack_words`),
so the board's outputs unpack exactly as Verilator's do.

`hwgen run OUT --backend board --port /dev/ttyUSB1 --input X [--check]` drives it; the link is
anything with `write(bytes)` and `read(n) -> bytes` returning fewer bytes on a timeout, e.g. a
pyserial port (`open_port`, which also takes pyserial URLs such as `socket://host:port`).
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import Protocol

import numpy as np

from ..errors import HwgenError
from ..fixed import IntType
from ..fpga.outputs import OutputMux
from ..sim.rtl import pack_words, unpack_outputs
from ..sim.verilator import from_limbs, to_limbs
from .board import DEFAULT_BAUD, bytes_per_word, bytes_to_words, words_to_bytes

__all__ = ["Link", "BoardError", "open_port", "BoardFormat", "run_on_board", "board_script", "DEFAULT_TIMEOUT",
           "DEFAULT_PORTS"]

#: Seconds to wait for a tensor's outputs after its inputs went out (a UP5K at 12 MHz takes 0.2 s
#: for person_detect; a board without the bitstream or the weights never answers).
DEFAULT_TIMEOUT = 10.0


class BoardError(HwgenError):
    """The board did not answer as the protocol says."""


class Link(Protocol):
    def write(self, data: bytes) -> int | None: ...

    def read(self, size: int) -> bytes: ...


def open_port(port: str, baud: int = DEFAULT_BAUD, timeout: float = DEFAULT_TIMEOUT) -> Link:
    """A serial port (or pyserial URL) at `baud` 8N1, reads returning after `timeout` seconds."""
    import serial

    try:
        link = serial.serial_for_url(port, baudrate=baud, bytesize=8, parity="N", stopbits=1, timeout=timeout)
    except (serial.SerialException, ValueError) as exc:
        raise BoardError(f"{port}: cannot open the serial port: {exc}") from None
    link.reset_input_buffer()
    return link


class BoardFormat:
    """The stream words of one accelerator as the bridge carries them."""

    def __init__(self, in_type: IntType, in_lanes: int, in_shape: tuple[int, ...], mux: OutputMux):
        self.in_type, self.in_lanes, self.in_shape, self.mux = in_type, in_lanes, tuple(in_shape), mux
        self.in_width = in_type.bits * in_lanes

    @property
    def out_bytes(self) -> int:
        """Bytes of one tensor's outputs on the wire."""
        return self.mux.words_per_sample * bytes_per_word(self.mux.width)

    def encode(self, sample: np.ndarray) -> bytes:
        """One input tensor as the bytes the host sends."""
        return words_to_bytes(from_limbs(pack_words(sample[None], self.in_type, self.in_lanes)), self.in_width)

    def decode(self, data: bytes) -> dict[str, np.ndarray]:
        """One tensor's output bytes as its output tensors (a batch of one)."""
        return unpack_outputs(to_limbs(bytes_to_words(data, self.mux.width), self.mux.width), self.mux)


def run_on_board(link: Link, fmt: BoardFormat, x: np.ndarray, *, port: str = "the board",
                 progress=None) -> dict[str, np.ndarray]:
    """The accelerator's outputs for a batch `x` (B, *in_shape), one tensor at a time over `link`."""
    x = np.asarray(x)
    if x.shape[1:] != fmt.in_shape:
        raise ValueError(f"expected samples of shape {fmt.in_shape}, got {x.shape[1:]}")
    results: list[dict[str, np.ndarray]] = []
    for k, sample in enumerate(x):
        link.write(fmt.encode(sample))
        data = link.read(fmt.out_bytes)
        if len(data) != fmt.out_bytes:
            raise BoardError(f"{port}: {len(data)} of the {fmt.out_bytes} output bytes of sample {k} came back "
                             "before the timeout: is the bitstream loaded (and, for a flash design, weights.bin at "
                             "its address), and the baud rate the one it was built for?")
        results.append(fmt.decode(data))
        if progress is not None and len(x) > 1 and (k + 1) % max(1, len(x) // 10) == 0:
            progress(f"{k + 1}/{len(x)} samples done")
    return {name: np.concatenate([r[name] for r in results]) for name in (s.tensor for s in fmt.mux.streams)}


#: The host's serial port for each board's UART bridge (the FTDI's second channel on the iCEBreaker).
DEFAULT_PORTS = {"icebreaker": "/dev/ttyUSB1", "ulx3s-85f": "/dev/ttyUSB0"}


def board_script(board: str, out: Path, script_dir: Path, program: list[list[str | Path]], baud: int) -> str:
    """`board.sh` beside a board's bitstream: `sh board.sh program` writes the bitstream (and the
    weights) into the board's flash, `sh board.sh run INPUT [hwgen run options]` runs an input on it
    and prints the outputs. `program`: the programming commands, their file arguments as Paths
    (written relative to the script, so the directories can move together)."""
    def arg(a: str | Path) -> str:
        if isinstance(a, Path):
            return '"$(dirname "$0")"/' + shlex.quote(os.path.relpath(a, script_dir))
        return shlex.quote(a)
    lines = [
        "#!/bin/sh",
        f"# Written by `hwgen synth --board {board}`: program the board, then run inputs on it.",
        "#   sh board.sh program                      the bitstream (and a sequential engine's weights) onto the board",
        "#   sh board.sh run INPUT [OPTIONS...]        INPUT (.npy, .npz or an image with --config CONFIG.json)",
        f"#                                             through the board; PORT={DEFAULT_PORTS[board]} unless set",
        "set -eu",
        'case "${1:-}" in',
        "program)",
        *("    " + " ".join(arg(a) for a in command) for command in program),
        "    ;;",
        "run)",
        '    input="${2:?usage: sh board.sh run INPUT [hwgen run options]}"; shift 2',
        f'    hwgen run {arg(out)} --backend board --port "${{PORT:-{DEFAULT_PORTS[board]}}}" --baud {baud} '
        '--input "$input" "$@"',
        "    ;;",
        "*)",
        '    echo "usage: sh $0 program | sh $0 run INPUT [hwgen run options]" >&2',
        "    exit 2",
        "    ;;",
        "esac",
        "",
    ]
    return "\n".join(lines)
