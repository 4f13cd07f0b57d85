"""Every ONNX op the importer understands, by op type."""

from . import qdq, qop

HANDLERS = {**qdq.HANDLERS, **qop.HANDLERS}
REFUSALS = dict(qop.REFUSALS)
