"""minihart: Hierarchical Attentive Recurrent Tracking (Kosiorek et al., NIPS 2017)
in plain NumPy/CuPy with hand-written forward and backward passes."""
from minihart.backend import asnumpy, get_array_module, to_device  # noqa: F401

__version__ = "0.1.0"
