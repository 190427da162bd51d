"""Ops with hand-written backward passes: ``op_forward(...) -> (out, cache)`` and
``op_backward(dout, cache) -> grads``. Importing this package registers their gradient
checks with :mod:`minihart.gradcheck`."""
import importlib

for _name in ("linear", "activations", "conv", "attention", "dfn", "lstm", "losses"):
    try:
        importlib.import_module(f"minihart.nn.{_name}")
    except ModuleNotFoundError as _exc:  # a module not written yet
        if _exc.name != f"minihart.nn.{_name}":
            raise
