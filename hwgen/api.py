"""hwgen's Python API: `compile` a model for targets, and `run` it on the golden model or generated code.

    import hwgen
    compiled = hwgen.compile("model.onnx", targets=("fpga", "rvv"), multipliers=16, count=False)
    compiled.write("out")                        # exactly what `hwgen compile -o out` writes
    y = hwgen.run(compiled, x)                   # the golden model: the model's output for x
    y = hwgen.run(compiled, x, backend="rtl")    # the same through the Verilated accelerator
    feeds, where = hwgen.image_input(compiled, "photo.png")  # an image as the input (the model's config file)
    boxes = hwgen.detect_image(compiled, "photo.png", backend="rvv")  # SSD detections in image pixels

Options are keywords, checked like the command line's (one-line `hwgen.HwgenError`s):
`rounding`, `multiplier_bits` (the compile); `device`, `multipliers`, `folds`, `measure` (FPGA);
`vlen`, `count` (RVV). A target's options may also be given whole: `fpga=FpgaOptions(...)`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import onnx

from . import backends, golden
from .arrays import check_input
from .compiler import Compiled, CompileOptions, compile_model
from .detect import Detection, detect_outputs
from .errors import InvalidOptionError
from .images import Placement, load_image
from .ir import Graph, InputPort
from .modelconfig import ModelConfig, config_for

__all__ = ["compile", "run", "image_input", "image_port", "detect_image", "BACKENDS"]

#: Where `run` can run the integer core: the golden model, or a target's generated code.
BACKENDS = {"golden": None, "rtl": "fpga", "rvv": "rvv"}


def _fields(cls) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def _split_options(options: Mapping) -> tuple[CompileOptions, dict[str, object]]:
    """The compile options and each target's options from one set of keywords."""
    options = dict(options)
    compile_keys = _fields(CompileOptions)
    compile_options = CompileOptions(**{k: options.pop(k) for k in list(options) if k in compile_keys})
    per_target: dict[str, object] = {}
    for target in backends.TARGETS:
        cls = backends.options_type(target)
        given = options.pop(target, None)
        keys = {k: options.pop(k) for k in list(options) if k in _fields(cls)}
        if given is not None and keys:
            raise InvalidOptionError(f"give {target} options either as {target}=... or as keywords, not both")
        per_target[target] = given if given is not None else cls(**keys)
    if options:
        known = sorted(compile_keys | {k for t in backends.TARGETS for k in _fields(backends.options_type(t))})
        raise InvalidOptionError(f"unknown option(s) {', '.join(map(repr, sorted(options)))}; hwgen knows "
                                 + ", ".join(known))
    return compile_options, per_target


def compile(model: str | Path | onnx.ModelProto, targets: Iterable[str] = (), **options) -> Compiled:  # noqa: A001
    """Compile an ONNX model (a path or a ModelProto) and generate code for `targets` ("fpga", "rvv").

    Returns a `Compiled`: `.ir`, `.report`, `.artifacts[target]` (file name -> bytes), and
    `.write(out_dir)`, which writes exactly what `hwgen compile` writes.
    """
    targets = list(dict.fromkeys(targets))
    for target in targets:
        backends.backend(target)  # an unknown target is one line
    compile_options, target_options = _split_options(options)
    compiled = compile_model(model, compile_options)
    for target in targets:
        compiled = compiled.with_artifacts(target, backends.backend(target).emit(compiled, target_options[target]))
    return compiled


def run(model: str | Path | onnx.ModelProto | Compiled, inputs, backend: str = "golden", **options):
    """The model's outputs for `inputs`, with its integer core on `backend` ("golden", "rtl", "rvv").

    `inputs`: the array of the model's one input, or a dict of arrays by input name, in the ONNX
    model's type and layout (a batch of samples on a leading axis of size 1 is allowed). Returns
    the output array, or a dict of arrays by output name when the model has several.
    """
    outputs = run_outputs(model, inputs, backend, **options)
    return next(iter(outputs.values())) if len(outputs) == 1 else outputs


def run_outputs(model, inputs, backend: str = "golden", **options) -> dict[str, np.ndarray]:
    """`run`, always returning the dict of outputs by name."""
    if backend not in BACKENDS:
        raise InvalidOptionError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
    if isinstance(model, Compiled):
        compiled = model
        _, target_options = _split_options(options)
    else:
        compile_keys = _fields(CompileOptions)
        compiled = compile(model, **{k: v for k, v in options.items() if k in compile_keys})
        _, target_options = _split_options({k: v for k, v in options.items() if k not in compile_keys})
    feeds = _feeds(compiled, inputs)
    core = None
    if BACKENDS[backend] is not None:
        target = BACKENDS[backend]
        module = backends.backend(target)
        core = lambda core_inputs: module.run_core(compiled, core_inputs, target_options[target])  # noqa: E731
    return golden.run_model(compiled.graph, feeds, core=core)


def _feeds(compiled: Compiled, inputs) -> dict[str, np.ndarray]:
    ports = compiled.graph.input_ports
    if not isinstance(inputs, Mapping):
        if len(ports) != 1:
            raise InvalidOptionError(f"the model has {len(ports)} inputs; pass a dict of arrays named "
                                     + ", ".join(repr(p.onnx_name) for p in ports))
        inputs = {ports[0].onnx_name: inputs}
    missing = [p.onnx_name for p in ports if p.onnx_name not in inputs]
    if missing:
        raise InvalidOptionError(f"no array for input(s) {', '.join(map(repr, missing))}")
    return {p.onnx_name: check_input(np.asarray(inputs[p.onnx_name]), p) for p in ports}


def _config(compiled: Compiled, config: str | Path | ModelConfig | None) -> ModelConfig:
    return config if isinstance(config, ModelConfig) else config_for(compiled.source, config)


def _no_config(compiled: Compiled) -> InvalidOptionError:
    return InvalidOptionError(f"{compiled.source}: no config file (looked for {compiled.source.with_suffix('.json')}; "
                              "give --config): hwgen needs one for images and detection")


def _image_port(compiled: Compiled, config: ModelConfig) -> InputPort:
    if config.image is None and config.path is None:
        raise _no_config(compiled)
    return image_port(compiled.graph, config)


def image_port(graph: Graph, config: ModelConfig) -> InputPort:
    """The input port the config's `image` section feeds (`image.input`, or the only input)."""
    where = str(config.path) if config.path is not None else "the config"
    if config.image is None:
        raise InvalidOptionError(f"{where}: no 'image' section: hwgen does not know how the model wants its images "
                                 "(write it there, or give --config)")
    ports = {p.onnx_name: p for p in graph.input_ports}
    name = config.image.input
    if name is None:
        if len(ports) != 1:
            raise InvalidOptionError(f"{where}: image.input must name one of the inputs {', '.join(map(repr, ports))}")
        name = next(iter(ports))
    if name not in ports:
        raise InvalidOptionError(f"{where}: image.input {name!r} is not an input of the model")
    return ports[name]


def _compiled(model, options: Mapping) -> tuple[Compiled, dict]:
    if isinstance(model, Compiled):
        return model, dict(options)
    compile_keys = _fields(CompileOptions)
    compiled = compile(model, **{k: v for k, v in options.items() if k in compile_keys})
    return compiled, {k: v for k, v in options.items() if k not in compile_keys}


def image_input(model, image: str | Path, config: str | Path | ModelConfig | None = None,
                **options) -> tuple[dict[str, np.ndarray], Placement]:
    """The model inputs made from an image file as the model's config says (its `image` section;
    default config: the .json beside the model), and where the input sits in the image."""
    compiled, _ = _compiled(model, options)
    cfg = _config(compiled, config)
    port = _image_port(compiled, cfg)
    x, placement = load_image(image, port, cfg.image)
    return {port.onnx_name: x}, placement


def detection_json(d: Detection, placement: Placement) -> dict:
    """A detection as `hwgen detect` prints it: in image pixels."""
    x0, y0 = placement.to_image(d.box[0], d.box[1])
    x1, y1 = placement.to_image(d.box[2], d.box[3])
    return {"score": round(d.score, 6), "box": [round(v, 2) for v in (x0, y0, x1, y1)],
            "keypoints": [[round(v, 2) for v in placement.to_image(x, y)] for x, y in d.keypoints],
            "class": d.class_id, "anchor": d.anchor}


def detect_image(model, image: str | Path, config: str | Path | ModelConfig | None = None,
                 backend: str = "golden", **options) -> list[dict]:
    """SSD detections on an image: the config's preprocessing, the model with its integer core on
    `backend`, then `hwgen.detect`. Returns dicts with score, box [x0, y0, x1, y1] and keypoints in
    image pixels, class and anchor index; the same on every backend."""
    compiled, rest = _compiled(model, options)
    cfg = _config(compiled, config)
    if cfg.detect is None and cfg.path is None:
        raise _no_config(compiled)
    if cfg.detect is None:
        raise InvalidOptionError(f"{cfg.path}: no 'detect' section (anchors, decode, nms)")
    feeds, placement = image_input(compiled, image, cfg)
    outputs = run_outputs(compiled, feeds, backend, **rest)
    return [detection_json(d, placement) for d in detect_outputs(outputs, cfg.detect)]
