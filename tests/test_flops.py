"""The analytic FLOP count of the model (minihart/flops.py), by hand."""
from minihart.model import preset
from minihart.flops import frame_flops, model_flops


def test_flop_count_by_hand():
    """synthetic preset, one frame: the conv layers and the glimpse counted by hand."""
    cfg = preset("synthetic")
    f = frame_flops(cfg, (60, 80))
    # x A_x^T: (60, 80) @ (80, 24), then A_y (x A_x^T): (24, 60) @ (60, 24)
    assert f["glimpse"] == 2 * 60 * 80 * 24 + 2 * 24 * 60 * 24
    assert f["glimpse_bwd"] == 2 * 24 * 24 * 60 * 2 + 2 * 24 * 60 * 80  # dA_y, du; dA_x
    conv = 2 * 8 * 9 * 24 * 24 + 2 * 16 * 8 * 9 * 12 * 12
    lstm = 2 * 2 * 64 * 4 * 64
    assert f["v1"] == conv
    assert f["init"] == conv + 2 * 5 * 16 * 144 + 2 * (5 * 144 + 4) * 64 + lstm
    assert f["step"] > f["init"]
    train, track = model_flops(cfg, (60, 80), 3, 4)
    assert train == 3 * (5 * (f["glimpse"] + f["glimpse_bwd"]) + 3 * (f["init"] + 4 * f["step"]))
    assert track == f["glimpse"] + f["step"]
    assert 1.5e9 < model_flops(preset("kitti"), (187, 621), 1, 1)[0] < 4e9
