"""Ops with hand-written backward passes: ``op_forward(...) -> (out, cache)`` and
``op_backward(dout, cache) -> grads``; each is gradient-checked by a case of
:mod:`minihart.gradcheck.cases`."""
from minihart.nn import activations, attention, conv, dfn, linear, losses, lstm  # noqa: F401
