"""The accelerator as data: engines, folds and stream lanes of every layer, and fork FIFO depths.

`make_plan` decides everything the hardware generator needs beyond the IR; the manifest stores
the plan, and `plan_from_json` gives it back, so a compiled accelerator can be rebuilt exactly.

Lanes (elements per stream word) are chosen per layer: a MAC layer's output has one lane per PE
of its fold, and every other unit gets the fewest lanes (a divisor of its channel count) that
keep it under RATE_MARGIN of the engines' interval, so the engines stay the bottleneck.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

from ..errors import InvalidOptionError, UnsupportedModelError
from ..ir import OP_BY_NAME, Graph, Node
from ..names import identifier, unique_identifiers
from .folding import DEFAULT_MULTIPLIERS, Fold, balance, context_fold, mac_layers, parse_folds
from .geometry import mac_geometry
from .hardware import WINDOW_SLACK_ROWS, MemoryKind, window_rows
from .program import EngineProgram, LayerProgram, compile_engine, min_requantizers
from .schedule import build_schedule, fold_steps
from .units import unit

__all__ = ["EngineSpec", "LayerSpec", "BranchSpec", "Plan", "Link", "make_plan", "check_supported", "plan_to_json",
           "plan_from_json", "tensor_links", "PLAN_FORMAT", "WINDOW_SLACK_ROWS", "PerfCounter", "perf_counters",
           "engine_programs", "top_name"]

PLAN_FORMAT = "hwgen-fpga-plan/3"
OLDER_PLAN_FORMATS = ("hwgen-fpga-plan/2",)  # one output: output_lanes a number

#: Every unit but the engines gets lanes enough to need at most this fraction of the engines'
#: interval, so the engines stay the bottleneck.
RATE_MARGIN = 0.75

#: Fork branches that feed a join (Add, Mul, Concat) wait for the other branch: their FIFO holds what
#: that branch can hold (`_rows_behind`), at most the whole tensor. Other branches get this many words.
BRANCH_WORDS = 2


@dataclass(frozen=True)
class EngineSpec:
    name: str
    fold: Fold                 # physical PE x SIMD
    layers: tuple[str, ...]    # IR node names run on it, in graph order
    pinned: bool               # chosen with --fold
    requantizers: int = 1      # shared by the PEs (the fewest that never stall it)
    lut_lanes: int = 0         # multiplier lanes built from logic instead of DSPs


@dataclass(frozen=True)
class LayerSpec:
    node: str                  # IR node name
    ident: str                 # its identifier in generated code
    op: str
    in_lanes: tuple[int, ...]  # lanes of each input as the layer consumes it
    out_lanes: int
    window: bool               # a window generator feeds it
    engine: str | None         # MAC layers: the engine it runs on
    fold: Fold | None          # MAC layers: the folding it runs at
    busy: int                  # model: busy cycles per inference (engine steps for MAC layers)
    window_busy: int           # model: words its window generator emits per inference


@dataclass(frozen=True)
class BranchSpec:
    tensor: str
    consumer: str              # node name, or "" for the graph output
    words: int                 # FIFO depth in words


@dataclass(frozen=True)
class Plan:
    model: str
    top: str                   # Verilog module / Amaranth class name stem
    budget: int | None         # the multiplier budget balanced for
    input_lanes: int
    output_lanes: tuple[int, ...]   # per graph output (several share the output stream: `outputs`)
    engines: tuple[EngineSpec, ...]
    layers: tuple[LayerSpec, ...]
    branches: tuple[BranchSpec, ...]
    placements: tuple[tuple[str, MemoryKind], ...] = ()  # (memory, where it goes); others: yosys chooses
    window_slack: int = WINDOW_SLACK_ROWS          # line buffer rows beyond what windows need

    def layer(self, node: str) -> LayerSpec:
        for spec in self.layers:
            if spec.node == node:
                return spec
        raise KeyError(node)

    def placed(self, prefix: str) -> dict[str, MemoryKind]:
        """Placements of the memories named `prefix`.<local name>, by local name."""
        return {name[len(prefix) + 1:]: kind for name, kind in self.placements if name.startswith(prefix + ".")}

    def engine(self, name: str) -> EngineSpec:
        for spec in self.engines:
            if spec.name == name:
                return spec
        raise KeyError(name)

    @property
    def multipliers(self) -> int:
        """Multiplier lanes of all engines (before zero weights remove any)."""
        return sum(e.fold.multipliers for e in self.engines)

    def engine_busy(self, name: str) -> int:
        return sum(self.layer(n).busy for n in self.engine(name).layers)

    @property
    def interval(self) -> int:
        """Model initiation interval: cycles per inference of the busiest unit."""
        units = [self.engine_busy(e.name) for e in self.engines]
        units += [spec.busy for spec in self.layers if spec.engine is None]
        units += [spec.window_busy for spec in self.layers]
        return max(units, default=1)


# -- what the FPGA backend accepts -------------------------------------------------------------


def check_supported(graph: Graph) -> None:
    """`graph` as the accelerator builds it (`outputs.hardware_graph`)."""
    if len(graph.inputs) != 1:
        raise UnsupportedModelError(f"the FPGA accelerator streams one input; the integer core has "
                                    f"{len(graph.inputs)} inputs")
    if not graph.nodes:
        raise UnsupportedModelError("the integer core has no operations to build hardware for")
    if any(name in graph.inputs for name in graph.outputs):
        raise UnsupportedModelError("a graph output is its input: nothing to compute")
    if len(set(graph.outputs)) != len(graph.outputs):
        raise UnsupportedModelError("a tensor is two of the graph's outputs; the FPGA accelerator streams it once")
    for node in graph.nodes:
        reason = unit(node).refusal(node, graph)
        if reason is not None:
            raise UnsupportedModelError(reason, node=node.name, op=node.op)


# -- lanes ------------------------------------------------------------------------------------------


def _check_lanes(node: Node, graph: Graph, lanes: int) -> None:
    channels = unit(node).lane_channels(node, graph)
    if lanes < 1 or channels % lanes:
        raise InvalidOptionError(f"{lanes} lanes do not divide the {channels} channels of {node.name!r}")


# -- the plan ---------------------------------------------------------------------------------------


def make_plan(graph: Graph, *, budget: int | None = None, folds: Sequence[str] = (),
              lanes: Mapping[str, int] | None = None, lut_lanes: Mapping[str, int] | None = None) -> Plan:
    """Plan the accelerator for `graph`.

    `budget`: total multipliers to balance (default DEFAULT_MULTIPLIERS; ignored when --fold pins
    every layer). `folds`: `LAYER=PE,SIMD` options. `lanes`: input lanes per node name, overriding
    the rate-based choice (for tests and experiments). `lut_lanes`: per engine name, how many of
    its multiplier lanes to build from logic (device fitting; default none).
    """
    lut_lanes = dict(lut_lanes or {})
    check_supported(graph)
    lanes = dict(lanes or {})
    layers = mac_layers(graph)
    pinned = parse_folds(folds, layers)
    if budget is None and len(pinned) < len(layers):
        budget = DEFAULT_MULTIPLIERS
    if budget is not None and budget < 1:
        raise InvalidOptionError(f"--multipliers must be >= 1, not {budget}")
    choices = balance(layers, budget, pinned) if layers else []
    by_name = {layer.name: layer for layer in layers}
    engines, fold_of, engine_of = [], {}, {}
    for i, choice in enumerate(choices):
        name = f"engine{i}"
        for layer_name in choice.layers:
            fold_of[layer_name] = context_fold(by_name[layer_name], choice.fold.pe, choice.fold.simd)
            engine_of[layer_name] = name
        physical = Fold(max(fold_of[n].pe for n in choice.layers), max(fold_of[n].simd for n in choice.layers))
        contexts = [(fold_of[n].pe, fold_steps(by_name[n].weights, fold_of[n].pe, fold_of[n].simd))
                    for n in choice.layers]
        engines.append(EngineSpec(name, physical, choice.layers, choice.pinned, min_requantizers(contexts),
                                  lut_lanes.get(name, 0)))

    engine_busy = {e.name: sum(unit(graph.node(n)).busy(graph.node(n), graph, 1, fold_of[n]) for n in e.layers)
                   for e in engines}
    target = max(1, int(max(engine_busy.values()) * RATE_MARGIN)) if engines else None
    idents = dict(zip([n.name for n in graph.nodes], unique_identifiers([n.name for n in graph.nodes], "layer")))

    specs: list[LayerSpec] = []
    produced = {graph.inputs[0]: None}  # tensor -> lanes it is produced at (None: the top input)
    for node in graph.nodes:
        u = unit(node)
        if node.is_view:
            src = produced[node.inputs[0]]
            last = graph.tensor(node.output).shape[-1]
            width = src if src is not None and last % src == 0 else math.gcd(src or last, last)
            specs.append(LayerSpec(node.name, idents[node.name], node.op, (width,), width, False, None, None, 0, 0))
            produced[node.output] = width
            continue
        fold = fold_of.get(node.name)
        width = lanes.pop(node.name, None)
        if width is None:
            width = u.choose_lanes(node, graph, target, fold)
        _check_lanes(node, graph, width)
        window = u.window(node, graph)
        specs.append(LayerSpec(node.name, idents[node.name], node.op, (width,) * len(node.inputs),
                               u.out_lanes(width, fold), window is not None, engine_of.get(node.name), fold,
                               u.busy(node, graph, width, fold), window.words(node, graph, width) if window else 0))
        produced[node.output] = specs[-1].out_lanes
    if lanes:
        raise InvalidOptionError(f"lanes given for unknown nodes: {sorted(lanes)}")

    consumers_of = {spec.node: spec for spec in specs}
    first = consumers_of[graph.consumers(graph.inputs[0])[0].name]
    input_lanes = first.in_lanes[graph.consumers(graph.inputs[0])[0].inputs.index(graph.inputs[0])]
    output_lanes = tuple(produced[name] for name in graph.outputs)
    return Plan(graph.name, top_name(graph), budget, input_lanes, output_lanes,
                tuple(engines), tuple(specs), _branches(graph, {s.node: s for s in specs}, input_lanes))


def _branches(graph: Graph, specs: dict[str, LayerSpec], input_lanes: int) -> tuple[BranchSpec, ...]:
    """FIFO depths of fork branches (tensors read by more than one consumer)."""
    branches = []
    for name in [graph.inputs[0]] + [n.output for n in graph.nodes]:
        readers = [(node.name, i) for node in graph.consumers(name) for i, inp in enumerate(node.inputs)
                   if inp == name]
        if name in graph.outputs:
            readers.append(("", 0))
        if len(readers) < 2:
            continue
        producer = graph.producer(name)
        lanes = input_lanes if producer is None else specs[producer.name].out_lanes
        whole = graph.tensor(name).size // lanes + BRANCH_WORDS
        for consumer, _ in readers:
            join = _join_reached(graph, name, graph.node(consumer)) if consumer else None
            words = BRANCH_WORDS
            if join is not None:
                rows = _rows_behind(graph, name, *join)
                t = graph.tensor(name)
                words = whole if rows is None else min(whole, -(-rows * t.size // (t.shape[0] * lanes))
                                                      + BRANCH_WORDS)
            branches.append(BranchSpec(name, consumer, words))
    return tuple(branches)


def _passes_on(node: Node, graph: Graph) -> bool:
    """A unit that passes words on as they come (no window, no engine to delay them by rows)."""
    u = unit(node)
    return len(node.inputs) == 1 and not u.on_engine and u.window(node, graph) is None and not u.held_rows


def _join_reached(graph: Graph, tensor: str, node: Node) -> tuple[Node, str] | None:
    """(the join, the tensor it reads of this branch) if a fork branch of `tensor` into
    `node` must buffer for a join (a node of several inputs): it reaches the join straight, or
    through units that pass words on (BlazeFace pads channels on its residual path) while the
    join's other input comes through a window or an engine, which delay it by rows. None: the
    branch needs no more than BRANCH_WORDS."""
    fork, direct = tensor, True
    while len(node.inputs) == 1:
        readers = graph.consumers(node.output)
        if len(readers) != 1 or node.output in graph.outputs or not _passes_on(node, graph):
            return None
        tensor, node, direct = node.output, readers[0], False
    if sum(inp == tensor for inp in node.inputs) != 1:
        return None
    if not direct and all(_root(graph, t) == fork for t in node.inputs if t != tensor):
        return None
    return node, tensor


def _root(graph: Graph, tensor: str) -> str:
    """The tensor `tensor` comes from through units that pass words on."""
    producer = graph.producer(tensor)
    while producer is not None and _passes_on(producer, graph):
        tensor = producer.inputs[0]
        producer = graph.producer(tensor)
    return tensor


#: Rows of its input a unit's queues and pipeline may hold beyond its line buffer, at most: queues
#: of a few output positions and pipeline stages (engine queues: QUEUE_POSITIONS positions plus the
#: latency), bounded by QUEUE_WORDS words.
QUEUE_ROWS = 2
QUEUE_WORDS = 64
#: Rows the skip branch holds beyond the other path's buffers.
SKIP_MARGIN_ROWS = 2


def _rows_behind(graph: Graph, fork: str, join: Node, branch: str) -> int | None:
    """Rows of the forked map a skip branch must hold: everything the join's other inputs' paths
    back to the fork can hold before the join reads their first word (line buffers, row buffers,
    queues), in rows of the fork's map, plus a margin. With more, the fork always has room for
    the word the other path needs next. None (the whole tensor): not a map, or a path that holds a
    whole input, forks again or does not lead back to the fork straight."""
    shape = graph.tensor(fork).shape
    if len(shape) != 3:
        return None
    rows = SKIP_MARGIN_ROWS
    for other in (t for t in join.inputs if t != branch):
        t = other
        while t != fork:
            node = graph.producer(t)
            if node is None or len(node.inputs) != 1 or len(graph.consumers(t)) != 1 or t in graph.outputs:
                return None
            u = unit(node)
            x = graph.tensor(node.inputs[0]).shape
            if u.holds_whole_input or len(x) != 3:
                return None
            window = u.window(node, graph)
            held = u.held_rows + QUEUE_ROWS + -(-QUEUE_WORDS // x[1])
            if window is not None:
                held += window_rows(x, window.kernel, window.stride, window.dilation)
            rows += -(-held * shape[0] // x[0])   # in rows of the forked map
            t = node.inputs[0]
    return min(rows, shape[0])


# -- wiring ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Link:
    """How one produced tensor reaches its readers (through any reshapes): one stream of `lanes`
    elements per word; several readers get a fork and a FIFO each (`depth` words, else None)."""

    tensor: str                                        # the produced tensor (a reshape's root)
    tag: str                                           # its identifier, for unit names
    lanes: int
    readers: tuple[tuple[str, int, int, int | None], ...]  # (consumer node, or "" for output k, its input
                                                           # index or k, lanes it reads, FIFO depth)


def tensor_links(graph: Graph, plan: Plan) -> list[Link]:
    """Every tensor's stream from producer to readers, in the order the accelerator builds them."""
    produced = {graph.inputs[0]: plan.input_lanes}
    root_of = {}
    for node in graph.nodes:
        if node.is_view:
            root_of[node.output] = root_of.get(node.inputs[0], node.inputs[0])
        else:
            produced[node.output] = plan.layer(node.name).out_lanes
    readers: dict[str, list] = {}
    for node in graph.nodes:
        if node.is_view:
            continue
        spec = plan.layer(node.name)
        for k, inp in enumerate(node.inputs):
            readers.setdefault(root_of.get(inp, inp), []).append((inp, node.name, k, spec.in_lanes[k]))
    for k, out in enumerate(graph.outputs):
        readers.setdefault(root_of.get(out, out), []).append((out, "", k, plan.output_lanes[k]))
    depth_of = {(b.tensor, b.consumer): b.words for b in plan.branches}
    links = []
    for root, rs in readers.items():
        fork = len(rs) > 1
        links.append(Link(root, identifier(root, "t"), produced[root],
                          tuple((c, k, want, depth_of.get((t, c), 2) if fork else None) for t, c, k, want in rs)))
    return links


# -- JSON --------------------------------------------------------------------------------------------


def plan_to_json(plan: Plan) -> dict:
    return {"format": PLAN_FORMAT, **asdict(plan)}


def plan_from_json(d: Mapping) -> Plan:
    if d.get("format") not in (PLAN_FORMAT, *OLDER_PLAN_FORMATS):
        raise ValueError(f"not a {PLAN_FORMAT} plan")
    output_lanes = d["output_lanes"]
    output_lanes = (output_lanes,) if isinstance(output_lanes, int) else tuple(output_lanes)

    def fold(f):
        return Fold(f["pe"], f["simd"]) if f is not None else None

    engines = tuple(EngineSpec(e["name"], fold(e["fold"]), tuple(e["layers"]), e["pinned"], e["requantizers"],
                               e["lut_lanes"]) for e in d["engines"])
    layers = tuple(LayerSpec(s["node"], s["ident"], s["op"], tuple(s["in_lanes"]), s["out_lanes"], s["window"],
                             s["engine"], fold(s["fold"]), s["busy"], s["window_busy"]) for s in d["layers"])
    branches = tuple(BranchSpec(b["tensor"], b["consumer"], b["words"]) for b in d["branches"])
    placements = tuple((name, MemoryKind(kind)) for name, kind in d["placements"])
    return Plan(d["model"], d["top"], d["budget"], d["input_lanes"], output_lanes, engines, layers, branches,
                placements, d["window_slack"])


# -- what the hardware is built from ------------------------------------------------------------------


@dataclass(frozen=True)
class PerfCounter:
    kind: str   # "layer": a node's unit (engine steps for MAC layers); "window": its window generator;
                # "engine": an engine's busy cycles (any of its layers)
    name: str   # node name or engine name


def top_name(graph: Graph) -> str:
    """The accelerator's Verilog module and Amaranth class stem, for either architecture."""
    return identifier(f"hwgen_{graph.name}", "hwgen")


def perf_counters(plan: Plan) -> list[PerfCounter]:
    """The accelerator's busy-cycle counters, in the order of its `perf` port."""
    counters = [PerfCounter("layer", s.node) for s in plan.layers if not OP_BY_NAME[s.op].is_view]
    counters += [PerfCounter("window", s.node) for s in plan.layers if s.window]
    counters += [PerfCounter("engine", e.name) for e in plan.engines]
    return counters


def layer_program(node: Node, graph: Graph, plan: Plan) -> LayerProgram:
    spec = plan.layer(node.name)
    lanes = spec.in_lanes[0]
    geom = mac_geometry(node, graph, lanes)
    schedule = build_schedule(geom, spec.fold.pe, spec.fold.simd)
    return LayerProgram(spec.ident, schedule, lanes, geom.vector, graph.tensor(node.inputs[0]).dtype,
                        graph.tensor(node.output).dtype, node.bias, node.requant, node.acc)


def engine_programs(graph: Graph, plan: Plan) -> dict[str, EngineProgram]:
    """The compiled program of every engine, by engine name."""
    return {e.name: compile_engine([layer_program(graph.node(n), graph, plan) for n in e.layers],
                                   e.fold.pe, e.fold.simd, e.requantizers) for e in plan.engines}
