"""The one place user arrays are read and model outputs written (`.npy` / `.npz`).

Arrays are checked before anything runs on them: the file's header against the memory budget
(before the data is read), no pickled objects (never unpickled), a numeric dtype that fits the
model's input type, finite values, at least one sample, and the model's input shape. Every problem
is one `InvalidOptionError` line naming the file and the input.
"""

from __future__ import annotations

import io
import math
import zipfile
from pathlib import Path

import numpy as np

from . import budget
from .errors import InvalidOptionError
from .fixed import IntType
from .ir import Graph, InputPort
from .names import terminal
from .outdir import write_file

__all__ = ["load_inputs", "save_outputs", "check_output_path", "check_input"]


def _npy_header(f) -> tuple[tuple[int, ...], np.dtype]:
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(f)
    elif version == (2, 0):
        shape, _, dtype = np.lib.format.read_array_header_2_0(f)
    else:
        raise ValueError(f".npy format version {version[0]}.{version[1]} is not supported")
    return tuple(shape), dtype


def _check_header(where: str, shape: tuple[int, ...], dtype: np.dtype) -> None:
    if dtype.hasobject:
        raise InvalidOptionError(f"{where}: holds Python objects ({dtype}), not numbers; hwgen does not unpickle "
                                 "files")
    budget.require(math.prod(shape) * dtype.itemsize, f"reading {where}")


def _read_npy(open_data, where: str) -> np.ndarray:
    """An array from a .npy stream, its header checked before any data is read."""
    with open_data() as data:
        shape, dtype = _npy_header(data)
    _check_header(where, shape, dtype)
    with open_data() as data:
        return np.lib.format.read_array(data, allow_pickle=False)


def _load(path: Path) -> dict[str, np.ndarray] | np.ndarray:
    if not path.exists():
        raise InvalidOptionError(f"{path}: no such file")
    if not path.is_file():
        raise InvalidOptionError(f"{path}: not a file")
    try:
        with open(path, "rb") as f:
            magic = f.read(6)
        if magic == b"\x93NUMPY":
            return _read_npy(lambda: open(path, "rb"), str(path))
        if magic[:2] != b"PK":
            raise ValueError("neither the .npy nor the .npz format")
        arrays = {}
        with zipfile.ZipFile(path) as archive:
            for member in archive.namelist():
                name = member.removesuffix(".npy")
                arrays[name] = _read_npy(lambda member=member: archive.open(member), f"{path} [{name}]")
        return arrays
    except InvalidOptionError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, SyntaxError) as exc:
        raise InvalidOptionError(f"{path}: not a .npy or .npz file ({exc})") from None


def load_inputs(path: str | Path, graph: Graph) -> dict[str, np.ndarray]:
    """The model inputs in an .npy (one input) or .npz (arrays named as the inputs), checked against
    the ONNX model's input types and shapes."""
    path = Path(path)
    ports = graph.input_ports
    data = _load(path)
    if isinstance(data, np.ndarray):
        if len(ports) != 1:
            raise InvalidOptionError(f"the model has {len(ports)} inputs; pass an .npz with arrays named "
                                     + ", ".join(repr(p.onnx_name) for p in ports))
        arrays = {ports[0].onnx_name: data}
    else:
        arrays = data
    feeds = {}
    for port in ports:
        if port.onnx_name not in arrays:
            raise InvalidOptionError(f"{path}: no array named {port.onnx_name!r}")
        feeds[port.onnx_name] = check_input(arrays[port.onnx_name], port)
    batches = {port.onnx_name: port.batch_of(feeds[port.onnx_name]) for port in ports}
    if len(set(batches.values())) > 1:
        raise InvalidOptionError(f"{path}: the inputs hold different numbers of samples: {batches}")
    return feeds


def check_input(x: np.ndarray, port: InputPort) -> np.ndarray:
    """The array as the model's input type; integers must fit, floats stay floats and must be finite."""
    want = np.dtype(port.onnx_dtype)
    name = port.onnx_name
    if x.dtype.kind not in "biuf" or x.dtype.names is not None:
        raise InvalidOptionError(f"input {name!r} must be {'float' if want.kind == 'f' else 'integer'} ({want}), "
                                 f"got {x.dtype}")
    if want.kind == "f":
        if x.dtype.kind != "f":
            raise InvalidOptionError(f"input {name!r} must be float ({want}), got {x.dtype}")
        bad = ~np.isfinite(x)
        if bad.any():
            what = "NaN" if np.isnan(x).any() else "infinite values"
            raise InvalidOptionError(f"input {name!r} holds {what} ({int(bad.sum())} of {x.size} elements are not "
                                     "finite)")
        x = x.astype(want)
    else:
        if x.dtype.kind not in "iu":
            raise InvalidOptionError(f"input {name!r} must be integer ({want}), got {x.dtype}; quantize it "
                                     "first or pass the float model's input")
        itype = IntType.from_numpy(want)
        if not itype.contains(x):
            raise InvalidOptionError(f"input {name!r} has values outside {want}")
        x = x.astype(want)
    try:
        batch = port.batch_of(x)
    except ValueError as exc:
        raise InvalidOptionError(f"input {name!r}: {exc}") from None
    if batch == 0:
        raise InvalidOptionError(f"input {name!r} holds no samples (shape {list(x.shape)})")
    return x


def check_output_path(path: str | Path, names: list[str]) -> None:
    """Refuse an output file name that cannot hold the model's outputs (before anything runs)."""
    path = Path(path)
    if path.is_dir():
        raise InvalidOptionError(f"{path}: is a directory; give a file name for the outputs")
    if not (path.parent if str(path.parent) else Path(".")).is_dir():
        raise InvalidOptionError(f"{path}: cannot write the outputs: {path.parent} is not a directory")
    if len(names) > 1 and path.suffix != ".npz":
        raise InvalidOptionError(f"{path}: the model has {len(names)} outputs ({', '.join(map(repr, names))}); "
                                 "give an .npz file for them")
    if path.suffix not in (".npy", ".npz"):
        raise InvalidOptionError(f"{path}: the output file must end in .npy or .npz")


def save_outputs(path: str | Path, outputs: dict[str, np.ndarray]) -> None:
    """One output as .npy (exactly at `path`), or an .npz of arrays named as the outputs."""
    path = Path(path)
    check_output_path(path, list(outputs))
    buffer = io.BytesIO()
    if path.suffix == ".npy":
        np.save(buffer, next(iter(outputs.values())), allow_pickle=False)
    else:
        np.savez(buffer, **outputs)
    write_file(path, buffer.getvalue(), what="output file")


#: Outputs of at most this many values are printed whole; larger ones as a summary.
PRINT_MAX_VALUES = 4096


def format_outputs(outputs: dict[str, np.ndarray], saved_to: str | Path | None = None) -> str:
    """The outputs as text: each whole (numpy's "..." never cuts one short), or, when it has more than
    PRINT_MAX_VALUES values, its type, shape and range and where the values are (or how to get them)."""
    lines = []
    for name, y in outputs.items():
        label = terminal(name)
        if y.size <= PRINT_MAX_VALUES:
            body = np.array2string(y, threshold=y.size + 1, max_line_width=120)
            lines.append(f"{label}: {body}")
        else:
            where = f"all values in {saved_to}" if saved_to else "give --output Y.npz for all values"
            lines.append(f"{label}: {y.dtype}{list(y.shape)}, {y.size:,} values in [{y.min()}, {y.max()}] ({where})")
    return "\n".join(lines)
