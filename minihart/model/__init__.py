"""The HART tracker: configuration presets, parameters, forward/backward through time, and
frame-by-frame inference (checkpoint files: :mod:`minihart.checkpoint`)."""
from minihart.model.config import PRESETS, Config, preset  # noqa: F401
from minihart.model.hart import backward, forward, sample_noise  # noqa: F401
from minihart.model.params import count_params, init_params  # noqa: F401
from minihart.model.tracker import Tracker  # noqa: F401
