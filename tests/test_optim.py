import numpy as np
import pytest

from minihart.optim import Adam, RMSProp, clip_by_global_norm, global_norm


def _quadratic(xp, rng):
    target = xp.asarray(rng.standard_normal((3, 4)).astype(np.float32))
    return {"w": xp.zeros((3, 4), np.float32)}, target


@pytest.mark.parametrize("opt", [RMSProp(lr=1e-2), Adam(lr=5e-2)])
def test_optimisers_minimise_a_quadratic(opt, xp, rng):
    params, target = _quadratic(xp, rng)
    start = float(((params["w"] - target) ** 2).sum())
    for _ in range(300):
        opt.step(params, {"w": 2 * (params["w"] - target)})
    assert float(((params["w"] - target) ** 2).sum()) < 1e-2 * start
    assert params["w"].dtype == np.float32


def test_rmsprop_first_step_matches_formula():
    opt = RMSProp(lr=0.1, rho=0.9, momentum=0.9, eps=1e-10)
    p = {"w": np.array([1.0, -2.0])}
    g = np.array([0.5, -0.25])
    opt.step(p, {"w": g.copy()})
    ms = 0.1 * g * g
    np.testing.assert_allclose(p["w"], [1.0, -2.0] - 0.1 * g / np.sqrt(ms + 1e-10))


def test_state_dict_round_trip_resumes_exactly(rng):
    grads = [{"w": rng.standard_normal(5)} for _ in range(6)]
    a, pa = Adam(lr=0.01), {"w": np.ones(5)}
    for g in grads:
        a.step(pa, g)
    b, pb = Adam(lr=0.01), {"w": np.ones(5)}
    for g in grads[:3]:
        b.step(pb, g)
    c = Adam(lr=0.5)
    c.load_state_dict({k: (dict(v) if isinstance(v, dict) else v) for k, v in b.state_dict().items()})
    for g in grads[3:]:
        c.step(pb, g)
    np.testing.assert_array_equal(pa["w"], pb["w"])


def test_clip_by_global_norm():
    grads = {"a": np.array([3.0]), "b": np.array([4.0])}
    assert global_norm(grads) == pytest.approx(5.0)
    clipped, norm = clip_by_global_norm(grads, 1.0)
    assert norm == pytest.approx(5.0)
    assert global_norm(clipped) == pytest.approx(1.0)
    same, _ = clip_by_global_norm(grads, 10.0)
    assert same["a"][0] == 3.0


def test_bad_arguments():
    with pytest.raises(ValueError, match="learning rate"):
        Adam(lr=0)
    with pytest.raises(ValueError, match="different keys"):
        Adam().step({"a": np.zeros(1)}, {"b": np.zeros(1)})
