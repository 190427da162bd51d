"""Optimisers on a flat ``dict[str, array]`` of parameters: RMSProp with momentum (the
paper's choice, section 5), Adam, and global-norm gradient clipping.

An optimiser updates ``params`` in place from ``grads`` (same keys). Its state is a dict of
arrays plus a step count, so a checkpoint can save and restore it exactly
(:meth:`state_dict` / :meth:`load_state_dict`).
"""
from __future__ import annotations

import math

from minihart.backend import fusable, get_array_module
from minihart.nn.losses import sum_of_squares


def global_norm(grads: dict):
    """``sqrt(sum_k ||g_k||^2)`` over every gradient array, as a 0-d array on their device
    (computed there: reading it with ``float`` is the caller's one transfer, when it wants one)."""
    arrays = list(grads.values())
    return get_array_module(*arrays).sqrt(sum_of_squares(arrays))


def clip_by_global_norm(grads: dict, max_norm: float):
    """Scale every gradient by ``min(1, max_norm / norm)``; returns ``(grads, norm)``, norm a 0-d
    device array (see :func:`global_norm`; the scale is computed there, so clipping never waits for it).
    A non-finite norm leaves the gradients unscaled; the caller reads the norm and can stop the step."""
    if max_norm < 0:  # a negative scale would turn every gradient around
        raise ValueError(f"clip_by_global_norm: max_norm must be >= 0 (0: no clipping), got {max_norm}")
    norm = global_norm(grads)
    if not max_norm:
        return grads, norm
    xp = get_array_module(norm)
    s = xp.where(xp.isfinite(norm), max_norm / xp.maximum(norm, max_norm), 1.0)  # 1 when norm <= max_norm
    return {k: g * s.astype(g.dtype) for k, g in grads.items()}, norm


class Optimizer:
    """Base class: per-parameter state arrays created lazily, a step counter, and
    ``state_dict``/``load_state_dict`` for checkpoints."""

    def __init__(self, lr: float):
        if not lr > 0:
            raise ValueError(f"learning rate must be > 0, got {lr}")
        self.lr, self.t = lr, 0
        self.state: dict[str, dict] = {}

    def _slot(self, name: str, key: str, like):
        slots = self.state.setdefault(name, {})
        if key not in slots:
            slots[key] = get_array_module(like).zeros_like(like)
        return slots[key]

    def step(self, params: dict, grads: dict) -> None:
        if set(params) != set(grads):
            raise ValueError(f"params and grads have different keys: {sorted(set(params) ^ set(grads))}")
        for k in params:
            if grads[k].shape != params[k].shape:
                raise ValueError(f"grads[{k!r}] has shape {tuple(grads[k].shape)}, the parameter "
                                 f"{tuple(params[k].shape)}")
        self.t += 1
        for k in params:
            self._update(k, params[k], grads[k])

    def state_dict(self) -> dict:
        flat = {f"{n}/{k}": v for n, slots in self.state.items() for k, v in slots.items()}
        return {"t": self.t, "lr": self.lr, "slots": flat}

    def load_state_dict(self, sd: dict) -> None:
        self.t, self.lr = int(sd["t"]), float(sd["lr"])
        self.state = {}
        for key, v in sd["slots"].items():
            name, slot = key.rsplit("/", 1)
            self.state.setdefault(name, {})[slot] = v


def _check_rates(what, decays, eps):
    if not (all(0 <= d < 1 for d in decays) and eps > 0):
        raise ValueError(f"{what}, eps={eps}: decay rates must be in [0, 1) and eps > 0")


class RMSProp(Optimizer):
    """RMSProp with momentum as in TensorFlow's ``RMSPropOptimizer`` (used by the reference):

    ``ms = rho ms + (1 - rho) g^2``;  ``mom = momentum mom + lr g / sqrt(ms + eps)``;
    ``p -= mom``. Paper, section 5: momentum 0.9, learning rate 3.33e-5 (KTH) or 3.33e-6 (KITTI).
    """

    def __init__(self, lr=3.33e-5, rho=0.9, momentum=0.9, eps=1e-10):
        super().__init__(lr)
        _check_rates(f"RMSProp: rho={rho}, momentum={momentum}", (rho, momentum), eps)
        self.rho, self.momentum, self.eps = rho, momentum, eps

    def _update(self, name, p, g):
        rmsprop_update(g, self._slot(name, "ms", p), self._slot(name, "mom", p), p,
                       self.rho, self.momentum, self.lr, self.eps)


@fusable
def rmsprop_update(g, ms, mom, p, rho, momentum, lr, eps):
    """One :class:`RMSProp` step of one parameter ``p``, in place (on a GPU in one launch)."""
    ms *= rho
    ms += (1 - rho) * g * g
    mom *= momentum
    mom += lr * g / get_array_module(p).sqrt(ms + eps)
    p -= mom


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015) with bias correction."""

    def __init__(self, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
        super().__init__(lr)
        _check_rates(f"Adam: beta1={beta1}, beta2={beta2}", (beta1, beta2), eps)
        self.beta1, self.beta2, self.eps = beta1, beta2, eps

    def _update(self, name, p, g):
        lr_t = self.lr * math.sqrt(1 - self.beta2 ** self.t) / (1 - self.beta1 ** self.t)
        adam_update(g, self._slot(name, "m", p), self._slot(name, "v", p), p, self.beta1, self.beta2, lr_t, self.eps)


@fusable
def adam_update(g, m, v, p, beta1, beta2, lr_t, eps):
    """One :class:`Adam` step of one parameter ``p`` with the bias-corrected rate ``lr_t``, in
    place (on a GPU in one launch)."""
    m *= beta1
    m += (1 - beta1) * g
    v *= beta2
    v += (1 - beta2) * g * g
    p -= p.dtype.type(lr_t) * m / (get_array_module(p).sqrt(v) + eps)


OPTIMIZERS = {"rmsprop": RMSProp, "adam": Adam}
