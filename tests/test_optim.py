import numpy as np
import pytest

from minihart.backend import get_array_module
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
    zero, norm = clip_by_global_norm({"a": np.zeros(3, np.float32)}, 1.0)  # no 0/0
    assert norm == 0 and zero["a"].dtype == np.float32 and not zero["a"].any()
    bad, norm = clip_by_global_norm({"a": np.array([np.inf, 1.0]), "b": np.array([2.0])}, 1.0)
    assert not np.isfinite(norm) and bad["b"][0] == 2.0  # left for the caller to refuse


def test_clip_stays_on_the_device(xp):
    """The norm comes back as a 0-d array of the gradients' device, not a Python float: on a
    GPU clipping queues its work without waiting (reading the norm is the caller's choice)."""
    grads = {"a": xp.asarray([3.0, 0.0], dtype=np.float32), "b": xp.asarray([[4.0]], dtype=np.float32)}
    clipped, norm = clip_by_global_norm(grads, 2.5)
    assert get_array_module(norm) is xp and norm.shape == ()
    assert clipped["a"].dtype == np.float32 and float(norm) == pytest.approx(5.0)
    assert float(global_norm(clipped)) == pytest.approx(2.5)


def test_bad_arguments():
    with pytest.raises(ValueError, match="learning rate"):
        Adam(lr=0)
    with pytest.raises(ValueError, match="different keys"):
        Adam().step({"a": np.zeros(1)}, {"b": np.zeros(1)})
    with pytest.raises(ValueError, match=r"grads\['a'\] has shape \(4,\), the parameter \(3,\)"):
        RMSProp().step({"a": np.zeros(3)}, {"a": np.zeros(4)})  # was NumPy's broadcast error
    with pytest.raises(ValueError, match="decay rates must be in"):
        RMSProp(momentum=2)  # diverges
    with pytest.raises(ValueError, match="decay rates must be in"):
        Adam(beta1=1.0)  # bias correction divides by 1 - beta1^t = 0
    with pytest.raises(ValueError, match="max_norm must be >= 0"):
        clip_by_global_norm({"a": np.ones(3)}, -1.0)  # would turn the gradients around
