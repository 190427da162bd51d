"""Tests of minihart/boxes.py: validation, conversions, intersection and IoU (+ gradients)."""
import numpy as np
import pytest

from minihart.backend import asnumpy
from minihart.boxes import (area, from_xywh, from_xyxy, intersection_backward,
                            intersection_forward, iou, iou_backward, iou_forward, to_xywh, to_xyxy,
                            validate_boxes)
from minihart.gradcheck import check
from minihart.gradcheck.cases import overlapping_pairs


@pytest.mark.parametrize("bad, why", [
    ([[0, 0, 2, np.nan]], "non-finite"),
    ([[0, np.inf, 2, 2]], "non-finite"),
    ([[0, 0, 0, 2]], "h <= 0"),
    ([[0, 0, 2, -1]], "h <= 0"),
    ([[30, 0, 2, 2]], "outside"),      # below the image
    ([[0, -5, 2, 5]], "outside"),      # ends exactly at the left edge: no overlap
])
def test_validate_boxes_rejects(xp, bad, why):
    boxes = xp.asarray(np.array([[1.0, 1, 3, 3]] + bad))
    with pytest.raises(ValueError, match=f"gt_box.*{why}.*index \\(1,\\)"):
        validate_boxes(boxes, "gt_box", image_hw=(20, 30))


def test_validate_boxes_shape_and_ok(xp):
    with pytest.raises(ValueError, match=r"gt_box must have shape \(\.\.\., 4\).*\(2, 3\)"):
        validate_boxes(xp.zeros((2, 3)), "gt_box")
    ok = xp.asarray(np.array([[-1.0, -1, 3, 3], [19, 29, 5, 5]]))  # partly visible
    assert validate_boxes(ok, "b", image_hw=(20, 30)) is ok
    validate_boxes(xp.asarray(np.array([100.0, 100, 1, 1])), "b")  # no image: position is free


def test_conversions(xp):
    kitti = xp.asarray(np.array([[10.0, 20.0, 50.0, 80.0]], np.float32))  # x1 y1 x2 y2
    box = from_xyxy(kitti)
    assert box.dtype == np.float32
    np.testing.assert_array_equal(asnumpy(box), [[20, 10, 60, 40]])  # exclusive ends: w = x2 - x1
    np.testing.assert_array_equal(asnumpy(to_xyxy(box)), asnumpy(kitti))
    otb = xp.asarray(np.array([5, 7, 30, 40]))  # x y w h, kept as given (ints stay ints)
    np.testing.assert_array_equal(asnumpy(from_xywh(otb)), [7, 5, 40, 30])
    assert from_xywh(otb).dtype == otb.dtype
    r = xp.asarray(np.random.default_rng(0).uniform(1, 9, (3, 2, 4)))
    np.testing.assert_allclose(asnumpy(from_xyxy(to_xyxy(r))), asnumpy(r), rtol=1e-12)
    np.testing.assert_array_equal(asnumpy(to_xywh(from_xywh(r))), asnumpy(r))
    np.testing.assert_array_equal(asnumpy(area(box)), [2400])
    with pytest.raises(ValueError, match=r"from_xyxy: xyxy.*\(5,\)"):
        from_xyxy(xp.zeros(5))


@pytest.mark.parametrize("a, b, want", [
    ([0, 0, 2, 2], [1, 1, 2, 2], 1 / 7),       # overlap 1, union 7
    ([0, 0, 4, 4], [1, 1, 2, 2], 4 / 16),      # contained
    ([0, 0, 2, 3], [0, 0, 2, 3], 1.0),         # identical
    ([0, 0, 2, 2], [5, 5, 2, 2], 0.0),         # disjoint
    ([0, 0, 2, 2], [2, 0, 2, 2], 0.0),         # touching edges
    ([0, 0, 2, 2], [1, 0, 2, 2], 2 / 6),       # shifted along y only
    ([0, 0, -1, 2], [0, 0, 2, 2], 0.0),        # degenerate prediction
    ([0, 0, -2, 2], [0, 0, 2, 2], 0.0),        # degenerate: union 0, no 0/0
])
def test_iou_known(xp, a, b, want):
    a, b = (xp.asarray(np.array(v, np.float32)) for v in (a, b))
    got = iou(a, b)
    assert got.dtype == np.float32
    assert float(got) == pytest.approx(want, rel=1e-6)
    assert float(iou(b, a)) == pytest.approx(want, rel=1e-6)


def test_intersection_and_iou_broadcast(xp):
    a = xp.asarray(np.array([[0.0, 0, 2, 2], [1, 1, 2, 2], [9, 9, 1, 1]]))
    inter, _ = intersection_forward(a, xp.asarray(np.array([[1.0, 1, 2, 2]] * 3)))
    np.testing.assert_allclose(asnumpy(inter), [1, 4, 0])
    np.testing.assert_allclose(asnumpy(iou(a, xp.asarray(np.array([1.0, 1, 2, 2])))), [1 / 7, 1, 0])
    with pytest.raises(ValueError, match=r"a\(3, 4\) and b\(4,\)"):
        iou_forward(a, a[0])
    with pytest.raises(ValueError, match=r"iou: boxes a\(3, 4\) and b\(2, 4\) do not broadcast"):
        iou(a, a[:2])


@pytest.mark.parametrize("shape", [(5,), (2, 3), (3, 1, 2)])
@pytest.mark.parametrize("op", ["intersection", "iou"])
def test_gradcheck(xp, shape, op):
    a, b = overlapping_pairs(np.random.default_rng(len(shape)), shape)
    fwd, bwd = {"intersection": (intersection_forward, intersection_backward),
                "iou": (iou_forward, iou_backward)}[op]
    errs = check(fwd, bwd, {"a": xp.asarray(a), "b": xp.asarray(b)}, seed=3)
    assert max(errs.values()) < 1e-7, errs


def test_disjoint_zero_gradient(xp):
    a = xp.asarray(np.array([[0.0, 0, 2, 2], [0, 0, -1, 3]]))
    b = xp.asarray(np.array([[5.0, 5, 2, 2], [0, 0, 2, 2]]))
    val, cache = iou_forward(a, b)
    da, db = iou_backward(xp.asarray(np.array([0.7, -1.3])), cache)
    assert np.all(asnumpy(val) == 0) and np.all(asnumpy(da) == 0) and np.all(asnumpy(db) == 0)


def test_iou_against_torch():
    torch = pytest.importorskip("torch")
    a, b = overlapping_pairs(np.random.default_rng(11), (4, 3))
    a[0, 0] = [0, 0, 2, 2]
    b[0, 0] = [5, 5, 1, 1]  # disjoint
    dout = np.random.default_rng(12).standard_normal((4, 3))
    ta, tb = (torch.tensor(v, requires_grad=True) for v in (a, b))
    start = torch.maximum(ta[..., :2], tb[..., :2])
    end = torch.minimum(ta[..., :2] + ta[..., 2:], tb[..., :2] + tb[..., 2:])
    side = torch.clamp(end - start, min=0)
    inter = side[..., 0] * side[..., 1]
    t_iou = inter / (ta[..., 2] * ta[..., 3] + tb[..., 2] * tb[..., 3] - inter)
    (t_iou * torch.tensor(dout)).sum().backward()
    val, cache = iou_forward(a, b)
    da, db = iou_backward(dout, cache)
    np.testing.assert_allclose(val, t_iou.detach().numpy(), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(da, ta.grad.numpy(), rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(db, tb.grad.numpy(), rtol=1e-10, atol=1e-14)
