"""Model configuration: one frozen dataclass and four presets (``kitti``, ``kth``, ``real``, ``synthetic``).

V1 is a list of layer specs, each a tuple:
  ``("conv", out_channels, kernel, stride, pad, groups)`` — pad an int or (top, bottom, left, right)
  ``("pool", size, stride)`` — max-pool, ``("relu",)``, ``("lrn",)`` — AlexNet's LRN.
"""
from __future__ import annotations

import dataclasses
import numbers
from dataclasses import dataclass

# AlexNet conv1-3 as the reference builds it for KITTI (hart/model/alexnet.py, maxpool=False): conv1 keeps
# stride 4 with TF "SAME" padding (56 -> 14; 3 before, 4 after), no max-pools, conv2 in 2 groups. The paper's text
# says stride 1 and one pool skipped; the reference gives the 14x14x384 map the paper reports from a 56x56 glimpse.
SMALL_V1 = (("conv", 16, 5, 1, 2, 1), ("relu",), ("pool", 2, 2), ("conv", 32, 3, 1, 1, 1), ("relu",))
ALEXNET_V1 = (
    ("conv", 96, 11, 4, (3, 4, 3, 4), 1), ("relu",), ("lrn",),
    ("conv", 256, 5, 1, 2, 2), ("relu",), ("lrn",),
    ("conv", 384, 3, 1, 1, 1), ("relu",),
)


@dataclass(frozen=True)
class Config:
    """Everything that fixes the shapes of the parameters (paper section 5 for the values).

    name: preset name; channels: 1 (greyscale) or 3 (colour); glimpse_hw: (h, w) of eq. (2);
    v1: V1 layer specs (see module docstring); ventral_maps: 1x1 conv output maps of the ventral
    stream; dfn: (kernel, maps) per dynamic-filter layer of the dorsal stream, eq. (3);
    n_units: LSTM size, eq. (5); mask_features: units of the location-map features fed to the
    attention read-out, eq. (6); zoneout: probability for cell and hidden state; dropout: after
    V1; att_gain: initial c of eq. (7); init_window_scale: the first attention window is the
    first box scaled by this about its centre (context around the object); l2: beta of eq. (9);
    context_attention: the attention loss is ``-log IoU`` (as eq. 10) with the object's context window
    (the box enlarged ``init_window_scale`` times), not eq. (11), under which any window between
    the box and the whole frame is equally good (a growing window loses nothing); centre_loss: eq. (10)
    and the context window's loss add DIoU's centre term, which has a gradient when the boxes are disjoint;
    box_from_object: eq. (8) adds the box correction to the window shrunk ``init_window_scale`` times (the object's
    part of it), not to the window; glimpse_grad: False stops the gradient of glimpse (2) to its window (it explodes);
    scale_loss: the weight of a squared log-size error added to both box losses (nn.losses.scale_penalty).
    """
    name: str
    channels: int
    glimpse_hw: tuple
    v1: tuple
    ventral_maps: int = 5
    dfn: tuple = ((1, 5), (3, 5))
    n_units: int = 100
    mask_features: int = 10
    zoneout: float = 0.05
    dropout: float = 0.25
    att_gain: float = 0.1
    init_window_scale: float = 1.5
    l2: float = 1e-4
    image_hw: tuple = (120, 160)  # the frame size the preset is trained on (data default)
    context_attention: bool = False
    centre_loss: bool = False
    box_from_object: bool = False
    glimpse_grad: bool = True
    scale_loss: float = 0.0

    def __post_init__(self):  # values no layer could use, named here rather than deep inside one
        def ints(v, low):
            return all(isinstance(i, numbers.Integral) and i >= low for i in v)
        problems = [
            (not ints((self.channels, self.ventral_maps, self.n_units, self.mask_features), 1),
             "channels, ventral_maps, n_units and mask_features must be positive integers"),
            (not (len(self.glimpse_hw) == 2 and ints(self.glimpse_hw, 2)), "glimpse_hw must be two ints >= 2"),
            (not (len(self.image_hw) == 2 and ints(self.image_hw, 1)), "image_hw must be two positive ints"),
            (not all(len(d) == 2 and ints(d, 1) and d[0] % 2 for d in self.dfn),
             "dfn must be (odd kernel, maps) pairs (an odd kernel keeps the map size)"),
            (not (0 <= self.zoneout < 1 and 0 <= self.dropout < 1), "zoneout and dropout must be in [0, 1)"),
            (not (self.att_gain > 0 and self.init_window_scale > 0 and self.l2 >= 0 and self.scale_loss >= 0),
             "att_gain and init_window_scale must be > 0, l2 >= 0 and scale_loss >= 0")]
        bad = [msg for failed, msg in problems if failed]
        if bad:
            raise ValueError(f"preset {self.name!r}: " + "; ".join(bad))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


PRESETS = {
    # KITTI, paper 5.2: 56x56 colour glimpse, AlexNet conv1-3 -> 14x14x384, ventral 1x1 -> 5
    # maps, dorsal DFN 1x1 and 3x3 with 5 maps, 100 LSTM units, zoneout 0.05, dropout 0.25.
    "kitti": Config("kitti", 3, (56, 56), ALEXNET_V1, image_hw=(187, 621)),
    # KTH, paper 5.1: 28x28 greyscale glimpse. The paper used RATM's pretrained extractor; ours
    # is a small V1 trained from scratch (our substitute, not the paper's network).
    "kth": Config("kth", 1, (28, 28), SMALL_V1, image_hw=(120, 160)),
    # real footage (README "Real footage"): kth's V1, grey 120x160 frames (the shipped checkpoint's),
    # 30 minutes from scratch; the attention loss of a context window twice the box, the box read out
    # from its object half, no glimpse-to-window gradient, a log-size error of weight 0.3 (round 28).
    "real": Config("real", 1, (32, 32), SMALL_V1, image_hw=(120, 160), context_attention=True,
                   init_window_scale=2.0, box_from_object=True, glimpse_grad=False, scale_loss=0.3),
    # synthetic: small enough to train on a 2-core CPU in minutes.
    "synthetic": Config("synthetic", 1, (24, 24), (
        ("conv", 8, 3, 1, 1, 1), ("relu",), ("pool", 2, 2),
        ("conv", 16, 3, 1, 1, 1), ("relu",)), n_units=64, image_hw=(60, 80)),
}


def preset(name: str, **overrides) -> Config:
    """A preset by name, optionally with fields replaced (``preset("kth", n_units=50)``)."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    try:
        return dataclasses.replace(PRESETS[name], **overrides)
    except TypeError as exc:
        raise ValueError(f"preset {name!r}: {exc}") from None
