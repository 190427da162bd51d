"""The embedded synthetic tracking set: determinism, format, difficulty knobs, scene content."""
import numpy as np
import pytest

from minihart.boxes import validate_boxes
from minihart.data import make_dataset
from minihart.data import synthetic as syn


def test_same_seed_same_sequence_and_prefix_property():
    k = syn.knobs("hard")
    f1, b1 = syn.sequence((3, 0, 5), 12, (48, 64), 1, k)
    f2, b2 = syn.sequence((3, 0, 5), 12, (48, 64), 1, k)
    f3, b3 = syn.sequence((3, 0, 5), 40, (48, 64), 1, k)
    f4, _ = syn.sequence((3, 0, 6), 12, (48, 64), 1, k)
    assert np.array_equal(f1, f2) and np.array_equal(b1, b2)
    np.testing.assert_allclose(f3[:12], f1, atol=1e-5)  # longer sequence = same start
    np.testing.assert_array_equal(b3[:12], b1)
    assert np.abs(f4 - f1).mean() > 0.02


@pytest.mark.parametrize("flavour, hw, c", [("kth", (120, 160), 1), ("kitti", (40, 130), 3)])
@pytest.mark.parametrize("level", ["easy", "hard"])
def test_format_and_boxes_inside_image(flavour, hw, c, level):
    frames, boxes = syn.sequence(1, 9, hw, c, syn.knobs(level))
    assert frames.shape == (9, c, *hw) and frames.dtype == np.float32
    assert boxes.shape == (9, 4) and boxes.dtype == np.float32
    assert frames.min() >= 0 and frames.max() <= 1 and frames.std() > 0.03
    validate_boxes(boxes, "boxes", image_hw=hw)
    assert (boxes[:, :2] >= -1e-4).all() and (boxes[:, 0] + boxes[:, 2] <= hw[0] + 1e-3).all()
    assert (boxes[:, 1] + boxes[:, 3] <= hw[1] + 1e-3).all()


def test_knobs_levels_overrides_and_errors():
    easy, hard, mid = syn.knobs("easy"), syn.knobs("hard"), syn.knobs(0.5)
    assert easy["distractors"] == 0 and easy["occluders"] == 0
    assert hard["distractors"] >= 3 and hard["occluders"] >= 2
    assert mid["noise"] == pytest.approx((easy["noise"] + hard["noise"]) / 2)
    assert syn.knobs("easy", noise=0.2)["noise"] == 0.2
    with pytest.raises(ValueError, match="unknown synthetic knob"):
        syn.knobs("easy", nosie=0.2)
    with pytest.raises(ValueError, match="difficulty"):
        syn.knobs("extreme")
    with pytest.raises(ValueError, match="difficulty"):
        syn.knobs(1.5)


def _in_out_contrast(frames, boxes):
    """Mean |target interior - surrounding ring| intensity over frames."""
    out = []
    for f, (y, x, h, w) in zip(frames[:, 0], boxes):
        y0, x0, y1, x1 = int(y + h * .3), int(x + w * .3), int(y + h * .7), int(x + w * .7)
        Y0, X0 = max(0, int(y - h * .3)), max(0, int(x - w * .3))
        ring = f[Y0:int(y + h * 1.3), X0:int(x + w * 1.3)]
        out.append(abs(f[y0:y1, x0:x1].mean() - ring.mean()))
    return np.mean(out)


def test_difficulty_changes_motion_and_visibility():
    def stats(level):
        move, contrast = [], []
        for i in range(12):
            frames, boxes = syn.sequence((0, i), 20, (60, 80), 1, syn.knobs(level))
            centre = boxes[:, :2] + boxes[:, 2:] / 2
            move.append(np.linalg.norm(np.diff(centre, axis=0), axis=1).mean())
            contrast.append(_in_out_contrast(frames, boxes))
        return np.mean(move), np.mean(contrast)

    (move_e, con_e), (move_h, con_h) = stats("easy"), stats("hard")
    assert 0.3 < move_e < move_h  # the target moves at every level, faster when hard
    assert con_e > 0.1 and con_e > 1.5 * con_h  # easy: clearly visible; hard: faint


def _changed_region(level_knobs, **extra):
    """Frames of one scene without and with an extra layer; the layer is the difference
    (noise comes from its own stream and the other draws come first)."""
    a, boxes = syn.sequence(11, syn.HORIZON, (60, 80), 1, level_knobs)
    b, boxes_b = syn.sequence(11, syn.HORIZON, (60, 80), 1, dict(level_knobs, **extra))
    np.testing.assert_array_equal(boxes, boxes_b)
    return np.abs(a - b)[:, 0] > 1e-4, boxes


def _touches(mask, box):
    y, x, h, w = box
    return mask[int(y):int(np.ceil(y + h)), int(x):int(np.ceil(x + w))].any()


@pytest.mark.parametrize("seed_level", [0.0, 0.6])
def test_distractor_crosses_the_target(seed_level):
    k = syn.knobs(seed_level, distractors=0)
    changed, boxes = _changed_region(k, distractors=1)
    assert changed.any() and not changed.all(axis=(1, 2)).any()
    assert any(_touches(m, b) for m, b in zip(changed, boxes))


def test_occluder_is_a_bar_across_the_target_path():
    k = syn.knobs("medium", occluders=0, occluder_width=2.0)
    changed, boxes = _changed_region(k, occluders=1)
    # a full-height or full-width bar, fixed in the world (it moves only with the camera)
    spans = changed.all(axis=1).any(axis=1) | changed.all(axis=2).any(axis=1)
    assert spans.mean() > 0.5
    assert any(_touches(m, b) for m, b in zip(changed, boxes))
    centre = boxes[:, :2] + boxes[:, 2:] / 2
    covered = [m[int(c[0]), int(c[1])] for m, c in zip(changed, centre)]
    assert any(covered)  # wider than the target: it hides the target's centre at some time


def test_dataset_batches_splits_and_determinism():
    train = make_dataset("synthetic", "ignored", "train", frame_hw=(30, 40), size=6)
    test = make_dataset("synthetic", split="test", frame_hw=(30, 40), size=6)
    assert train.image_hw == (30, 40) and train.channels == 1 and train.num_windows(5) == 6
    f, b, p = train.batch(np.random.default_rng(0), 4, 7)
    assert f.shape == (4, 7, 1, 30, 40) and b.shape == (4, 7, 4) and p.shape == (4, 7)
    assert (p == 1).all()
    f2, b2, _ = train.batch(np.random.default_rng(0), 4, 7)
    assert np.array_equal(f, f2) and np.array_equal(b, b2)
    assert not np.allclose(train.window(0, 5)[1], test.window(0, 5)[1])  # different seeds
    assert sum(len(x[1]) for x in test.batches(4, 3)) == 6
    with pytest.raises(ValueError, match="flavour"):
        make_dataset("synthetic", flavour="mot")


def test_preview_writes_png_and_gif(tmp_path, monkeypatch):
    monkeypatch.setattr(syn, "FLAVOURS", {"kth": ((30, 40), 1), "kitti": ((24, 80), 3)})
    png, gif = syn.preview(tmp_path, seq_len=8, every=4)
    import imageio.v3 as iio
    sheet, anim = iio.imread(png), iio.imread(gif, index=None)
    assert sheet.shape[0] == 3 * (60 + 4) + 3 * (24 + 4)  # 3 KTH rows (x2), 3 KITTI rows
    assert anim.shape[:3] == (4, 30, 3 * 40)  # every second frame, three levels side by side
