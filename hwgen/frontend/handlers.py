"""Every ONNX op the importer understands, by op type, and the domains they come from."""

from . import qdq, qonnx, qop

HANDLERS = {**qdq.HANDLERS, **qop.HANDLERS, **qonnx.HANDLERS}
REFUSALS = dict(qop.REFUSALS)
DOMAINS = ("", "ai.onnx", "com.microsoft", *qonnx.QONNX_DOMAINS)
