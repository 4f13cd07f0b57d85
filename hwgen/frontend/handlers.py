"""Every ONNX op the importer understands, keyed by (domain, op type): an op type means what its
domain's schema says, so `Relu` of another domain is not ONNX's Relu."""

from . import conv_transpose, elementwise, movement, qdq, qonnx, qop

STANDARD = ""           # ai.onnx, also spelled "ai.onnx"
MICROSOFT = "com.microsoft"

HANDLERS = {
    **{(STANDARD, op): h for op, h in {**qdq.HANDLERS, **elementwise.HANDLERS, **movement.HANDLERS,
                                      **conv_transpose.HANDLERS, **qop.HANDLERS}.items()},
    **{(MICROSOFT, op): h for op, h in qop.MICROSOFT_HANDLERS.items()},
    # onnxruntime's contrib QuantizeLinear / DequantizeLinear (its QDQ graphs with 16-bit types)
    **{(MICROSOFT, op): qdq.HANDLERS[op] for op in ("QuantizeLinear", "DequantizeLinear")},
    **{(domain, op): h for domain in qonnx.QONNX_DOMAINS for op, h in qonnx.HANDLERS.items()},
}
REFUSALS = {(STANDARD, op): h for op, h in qop.REFUSALS.items()}


def domain(node) -> str:
    return STANDARD if node.domain in ("", "ai.onnx") else node.domain


def supported() -> str:
    """The supported ops, for messages: standard ones by name, others with their domain."""
    return ", ".join(sorted(op if d == STANDARD else f"{d}.{op}" for d, op in HANDLERS))
