"""Ops with hand-written backward passes: ``op_forward(...) -> (out, cache)`` and
``op_backward(dout, cache) -> grads``. Importing this package registers their gradient
checks with :mod:`minihart.gradcheck`."""
from minihart.nn import activations, attention, conv, dfn, linear, losses, lstm  # noqa: F401
