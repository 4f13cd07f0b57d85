"""Removing the channels that pruning left dead, so structurally pruned models shrink.

Two kinds of dead output channel of a multiply-accumulate op:

* constant: all its weights are zero, so it outputs requant(bias) everywhere. Its
  consumers fold that constant into their biases (exact where no padding reads the
  channel, or where the constant is the zero point that padding uses anyway);
  channel-wise ops on the way (depthwise conv, max pool, requantize, global average
  pool) turn it into another constant channel and lose it too;
* unused: every consumer's weights on it are zero.

The forward sweep removes constant channels (cascading downstream), the backward
sweep unused ones (cascading upstream, since a producer that loses outputs may
stop using some of its inputs). A channel that cannot be removed exactly stays.
"""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np

from ..ir import (
    Add,
    Affine,
    AvgPool,
    Concat,
    Conv2d,
    Dense,
    DepthToSpace,
    GlobalAvgPool,
    Graph,
    Lookup,
    MaxPool,
    Mul,
    Node,
    Pad,
    Requantize,
    Reshape,
    Resize,
    Slice,
    Tensor,
    Transpose,
)

log = logging.getLogger(__name__)

#: An edit: node name -> replacement node, tensor name -> replacement tensor.
Plan = tuple[dict[str, Node], dict[str, Tensor]]


def _is_depthwise(node: Conv2d, graph: Graph) -> bool:
    return (node.weights.shape[3] == 1
            and node.groups == graph.tensor(node.inputs[0]).shape[-1] == node.out_channels)


def _drop(t: Tensor, keep: list[int], per_channel_scale: bool = True) -> Tensor:
    scale = tuple(t.scale[i] for i in keep) if per_channel_scale and len(t.scale) > 1 else t.scale
    return replace(t, shape=(*t.shape[:-1], len(keep)), scale=scale)


def _requant_channel(node, k: int, acc: int) -> int:
    rq = node.requant
    return int(rq.select([k]).apply(np.array([acc]))[0]) if rq.channels > 1 else int(rq.apply(np.array([acc]))[0])


def _plan(graph: Graph, tensor: str, consts: dict[int, int | None], plan: Plan) -> bool:
    """Extend `plan` so every consumer of `tensor` stops reading channels `consts`.

    consts[k] is the constant value of channel k, or None for a channel its
    consumers must already ignore (zero weights). Returns False if any cannot.
    """
    if tensor in graph.outputs or not graph.consumers(tensor):
        return False
    t = plan[1].get(tensor, graph.tensor(tensor))
    channels = graph.tensor(tensor).shape[-1]
    keep = [i for i in range(channels) if i not in consts]
    for node in graph.consumers(tensor):
        node = plan[0].get(node.name, node)
        rule = CONSUMERS.get(type(node))
        if rule is None or not rule(graph, node, t, consts, keep, plan):
            return False
    return True


# -- how each consumer stops reading channels --------------------------------------------------------
# A rule returns False when it cannot (the channels then stay). Each sees: the consumer, the
# tensor `t` it reads (as planned so far), the channels' constants and the channels to keep.


def _conv_consumer(graph: Graph, node: Conv2d, t: Tensor, consts, keep, plan: Plan) -> bool:
    if node.groups == 1:  # sums over its input channels: fold the constants into the bias
        w = node.weights
        if any(c is None and np.any(w[..., k]) for k, c in consts.items()):
            return False
        if any(node.pads) and any(c is not None and c != t.zero_point for c in consts.values()):
            return False  # border taps read padding (zx), not the constant
        bias = node.bias + sum(int(c) * w[..., k].reshape(w.shape[0], -1).sum(axis=1)
                               for k, c in consts.items() if c is not None)
        plan[0][node.name] = replace(node, weights=w[..., keep], bias=bias)
        return True
    if not _is_depthwise(node, graph) or node.requant is None:
        return False
    if any(c is None for c in consts.values()):
        return False
    if any(node.pads) and any(c != t.zero_point for c in consts.values()):
        return False
    out = {k: _requant_channel(node, k, int(node.bias[k]) + c * int(node.weights[k].sum()))
           for k, c in consts.items()}
    return _channelwise(graph, node, out, keep, plan, weights=node.weights[keep], bias=node.bias[keep],
                        groups=len(keep), requant=node.requant.select(keep))


def _dense_consumer(graph: Graph, node: Dense, t: Tensor, consts, keep, plan: Plan) -> bool:
    return node.weights.ndim == 2 and len(t.shape) == 1 and _fold_dense(node, consts, keep, plan)


def _reshape_consumer(graph: Graph, node: Reshape, t: Tensor, consts, keep, plan: Plan) -> bool:
    return len(graph.tensor(node.output).shape) == 1 and \
        _plan_flatten(graph, node, t, consts, graph.tensor(node.inputs[0]).shape[-1], keep, plan)


def _maxpool_consumer(graph: Graph, node: MaxPool, t: Tensor, consts, keep, plan: Plan) -> bool:
    return all(c is not None for c in consts.values()) and _channelwise(graph, node, dict(consts), keep, plan)


def _requantize_consumer(graph: Graph, node: Requantize, t: Tensor, consts, keep, plan: Plan) -> bool:
    if any(c is None for c in consts.values()):
        return False
    out = {k: _requant_channel(node, k, c - t.zero_point) for k, c in consts.items()}
    return _channelwise(graph, node, out, keep, plan, requant=node.requant.select(keep))


def _global_avgpool_consumer(graph: Graph, node: GlobalAvgPool, t: Tensor, consts, keep, plan: Plan) -> bool:
    if any(c is None for c in consts.values()):
        return False
    h, w, _ = t.shape
    out = {k: _requant_channel(node, k, h * w * (c - t.zero_point)) for k, c in consts.items()}
    return _channelwise(graph, node, out, keep, plan, requant=node.requant.select(keep))


def _lookup_consumer(graph: Graph, node: Lookup, t: Tensor, consts, keep, plan: Plan) -> bool:
    if any(c is None for c in consts.values()):
        return False

    def table(k: int) -> int:
        return node.channel_tables[k] if node.channel_tables else 0

    out = {k: int(node.tables[table(k)][c - t.dtype.lo]) for k, c in consts.items()}
    channel_tables = tuple(node.channel_tables[k] for k in keep) if node.channel_tables else ()
    return _channelwise(graph, node, out, keep, plan, channel_tables=channel_tables)


def _affine_consumer(graph: Graph, node: Affine, t: Tensor, consts, keep, plan: Plan) -> bool:
    if any(c is None for c in consts.values()):
        return False

    def at(values: tuple[int, ...], k: int) -> int:
        return values[k] if len(values) > 1 else values[0]

    out = {k: _requant_channel(node, k, at(node.scale, k) * (c - t.zero_point) + at(node.offset, k))
           for k, c in consts.items()}
    scale = tuple(node.scale[k] for k in keep) if len(node.scale) > 1 else node.scale
    offset = tuple(node.offset[k] for k in keep) if len(node.offset) > 1 else node.offset
    return _channelwise(graph, node, out, keep, plan, scale=scale, offset=offset, requant=node.requant.select(keep))


def _resize_consumer(graph: Graph, node: Resize, t: Tensor, consts, keep, plan: Plan) -> bool:
    if any(c is None for c in consts.values()):
        return False
    if node.requant is None:  # nearest: a constant channel stays that constant
        return _channelwise(graph, node, dict(consts), keep, plan)
    total = sum(w for _, w in node.rows[0]) * sum(w for _, w in node.cols[0])
    out = {k: _requant_channel(node, k, total * (c - t.zero_point)) for k, c in consts.items()}
    return _channelwise(graph, node, out, keep, plan, requant=node.requant.select(keep))


#: op type -> how it stops reading some of its input's channels (the others: KEEPS_CHANNELS).
CONSUMERS = {
    Conv2d: _conv_consumer,
    Dense: _dense_consumer,
    Reshape: _reshape_consumer,
    MaxPool: _maxpool_consumer,
    Requantize: _requantize_consumer,
    GlobalAvgPool: _global_avgpool_consumer,
    Lookup: _lookup_consumer,
    Affine: _affine_consumer,
    Resize: _resize_consumer,
}

#: op types that keep every channel they read, and why (their producers' dead channels stay).
KEEPS_CHANNELS = {
    AvgPool: "averages a window of each channel: a constant channel stays constant, but its border windows "
             "divide by other counts; not folded yet",
    Add: "adds two tensors channel by channel: both producers would have to lose the same channels",
    Concat: "joins tensors along channels: removing one input's channels shifts the others'",
    Mul: "multiplies two tensors channel by channel: both producers would have to lose the same channels",
    Pad: "pads with a value, which a constant channel's border need not equal; not folded yet",
    Slice: "may cut channels: which of the kept channels it reads would have to be renumbered; not done yet",
    Transpose: "moves the channel axis: its channels are no longer the last axis downstream",
    DepthToSpace: "interleaves groups of channels into positions: a dead channel leaves holes in the map",
}

#: op type -> whether a node's output channels can be removed (it sums over input channels, so
#: a dead output is a weight row): dense convolutions and 2-D Dense.
PRODUCERS = {
    Conv2d: lambda node: node.groups == 1,
    Dense: lambda node: node.weights.ndim == 2,
}


def _prunable(node: Node) -> bool:
    rule = PRODUCERS.get(type(node))
    return rule is not None and rule(node)


def _channelwise(graph: Graph, node: Node, out_consts: dict[int, int], keep: list[int], plan: Plan,
                 **changes) -> bool:
    """A channel-wise op loses the channels and passes their (new) constants downstream."""
    if not _plan(graph, node.output, out_consts, plan):
        return False
    plan[0][node.name] = replace(plan[0].get(node.name, node), **changes)
    plan[1][node.output] = _drop(graph.tensor(node.output), keep)
    return True


def _plan_flatten(graph: Graph, node: Reshape, t: Tensor, consts, channels: int, keep, plan: Plan) -> bool:
    """A flatten of (H, W, C) to (H*W*C,): channel k is at positions p*C + k."""
    positions = t.size // channels
    flat_keep = [p * channels + k for p in range(positions) for k in keep]
    flat_consts = {p * channels + k: c for p in range(positions) for k, c in consts.items()}
    out = graph.tensor(node.output)
    for consumer in graph.consumers(node.output):
        consumer = plan[0].get(consumer.name, consumer)
        if node.output in graph.outputs or not (type(consumer) is Dense and consumer.weights.ndim == 2):
            return False
        if not _fold_dense(consumer, flat_consts, flat_keep, plan):
            return False
    plan[1][node.output] = replace(out, shape=(len(flat_keep),))
    return True


def _fold_dense(node: Dense, consts: dict[int, int | None], keep: list[int], plan: Plan) -> bool:
    w = node.weights
    if any(c is None and np.any(w[:, k]) for k, c in consts.items()):
        return False
    bias = node.bias + sum(int(c) * w[:, k] for k, c in consts.items() if c is not None)
    plan[0][node.name] = replace(node, weights=w[:, keep], bias=bias)
    return True


def _apply(graph: Graph, producer: Node, keep: list[int], plan: Plan) -> Graph:
    nodes, tensors = plan
    w = producer.weights
    nodes[producer.name] = replace(producer, weights=w[keep], bias=producer.bias[keep],
                                   requant=producer.requant.select(keep) if producer.requant else None)
    tensors[producer.output] = _drop(graph.tensor(producer.output), keep)
    new_tensors = dict(graph.tensors)
    new_tensors.update(tensors)
    return replace(graph, nodes=tuple(nodes.get(n.name, n) for n in graph.nodes), tensors=new_tensors)


def _try_remove(graph: Graph, producer: Node, candidates: dict[int, int | None]) -> Graph:
    removable = {k: c for k, c in candidates.items() if _plan(graph, producer.output, {k: c}, ({}, {}))}
    if not removable or len(removable) == producer.out_channels:
        return graph  # keep at least one channel: an empty tensor is not a tensor
    plan: Plan = ({}, {})
    if not _plan(graph, producer.output, removable, plan):
        return graph
    keep = [i for i in range(producer.out_channels) if i not in removable]
    log.info("%s: removed %d dead output channels", producer.name, len(removable))
    return _apply(graph, producer, keep, plan)


def remove_constant_channels(graph: Graph) -> Graph:
    """Forward sweep: output channels whose weights are all zero."""
    for name in [n.name for n in graph.nodes]:
        node = graph.node(name)
        if not _prunable(node) or node.requant is None:
            continue
        rows = node.weights.reshape(node.out_channels, -1)
        zero = [k for k in range(node.out_channels) if not np.any(rows[k])]
        consts = {k: _requant_channel(node, k, int(node.bias[k])) for k in zero}
        graph = _try_remove(graph, node, consts)
    return graph


def remove_unused_channels(graph: Graph) -> Graph:
    """Backward sweep: output channels no consumer's weights read."""
    for name in reversed([n.name for n in graph.nodes]):
        node = graph.node(name)
        if _prunable(node):
            graph = _try_remove(graph, node, dict.fromkeys(range(node.out_channels)))
    return graph
