"""The same HART model written the way a PyTorch user would: ``torch.nn`` + autograd.

It lives outside the package: the benchmark (``python -m minihart.bench --against torch``)
and its test load this file (:func:`minihart.bench.load_torch_twin`); PyTorch is never a
dependency of minihart. :class:`TorchHART` takes minihart's flat
parameter dict (copied in) and reproduces :func:`minihart.model.hart.forward` line for line
(glimpse eq. 2 with the stride -> sigma polynomial, V1 with "SAME" padding and groups, the
dynamic filters of eq. 3 as one grouped convolution, the LSTM with the same zoneout masks,
the read-outs and the losses of eqs. 9-12), so outputs and gradients agree to rounding: the
race is fair. Subgradients at kinks follow minihart's choices (``torch.where`` picks them).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from minihart.backend import asnumpy
from minihart.model.hart import LRN, is_weight
from minihart.nn.attention import EPS, SIGMA_COEFFS, SIGMA_MIN, STRIDE_FIT_MAX

ACT = {"relu": F.relu, "elu": F.elu, "tanh": torch.tanh}


def _neg_log_clip(x, eps):
    """``-log(clip(x, eps, 1))`` with zero gradient where the clip is active (as minihart)."""
    inside = (x > eps) & (x < 1)
    return -torch.log(torch.where(inside, x, x.clamp(eps, 1).detach()))


def _intersection(a, b):
    s_a, s_b = a[..., :2], b[..., :2]
    e_a, e_b = s_a + a[..., 2:], s_b + b[..., 2:]
    raw = torch.where(e_a <= e_b, e_a, e_b) - torch.where(s_a >= s_b, s_a, s_b)
    side = torch.where(raw > 0, raw, torch.zeros_like(raw))
    return side[..., 0] * side[..., 1]


def _iou(a, b):
    inter = _intersection(a, b)
    union = a[..., 2] * a[..., 3] + b[..., 2] * b[..., 3] - inter
    return inter / torch.where(union > 0, union, torch.ones_like(union))


def _filterbank(mu, gamma, n_out, n_in):
    big = gamma > STRIDE_FIT_MAX
    g = torch.where(big, torch.full_like(gamma, STRIDE_FIT_MAX), gamma)
    p = torch.full_like(g, SIGMA_COEFFS[-1])
    for c in SIGMA_COEFFS[-2::-1]:
        p = p * g + c
    sigma = torch.where(p > SIGMA_MIN, p, torch.full_like(p, SIGMA_MIN))
    sigma = sigma * torch.where(big, gamma / STRIDE_FIT_MAX, torch.ones_like(gamma))
    r = torch.arange(n_out, dtype=mu.dtype, device=mu.device)
    pixels = torch.arange(n_in, dtype=mu.dtype, device=mu.device) + 0.5
    z = (pixels - (mu[:, None] + gamma[:, None] * r)[:, :, None]) / sigma[:, None, None]
    e = torch.exp(-0.5 * z * z)
    return e / (e.sum(dim=2, keepdim=True) + EPS)


def glimpse(x, a, hw):
    """``A_y x A_x^T`` of every channel, eq. (2): x (B, C, H, W), a (B, 4) -> (B, C, h, w)."""
    H, W = x.shape[2:]
    h, w = hw
    gy, gx = a[:, 2] * (H / h), a[:, 3] * (W / w)
    Ay = _filterbank(a[:, 0] * H + 0.5 * gy, gy, h, H)
    Ax = _filterbank(a[:, 1] * W + 0.5 * gx, gx, w, W)
    return Ay[:, None] @ (x @ Ax[:, None].transpose(-1, -2))  # width first, as minihart: fewer FLOPs


class TorchHART(torch.nn.Module):
    """HART in PyTorch with minihart's parameters copied in (``params`` keys, dots -> ``:``)."""

    def __init__(self, params: dict, cfg, device="cpu", dtype=torch.float32):
        super().__init__()
        self.cfg = cfg
        self.w = torch.nn.ParameterDict({k.replace(".", ":"): torch.nn.Parameter(
            torch.as_tensor(asnumpy(v), dtype=dtype, device=device)) for k, v in params.items()})

    def p(self, name):
        return self.w[name.replace(".", ":")]

    def grads(self) -> dict:
        """``{minihart name: gradient}`` after ``loss.backward()``."""
        return {k.replace(":", "."): v.grad for k, v in self.w.items()}

    def _dense(self, name, x, act):
        return ACT[act](x @ self.p(name + ".W") + self.p(name + ".b"))

    def _lstm(self, x, h, c, zh, zc):
        H = h.shape[1]
        a = x @ self.p("lstm.Wx") + h @ self.p("lstm.Wh") + self.p("lstm.b")
        i, f, o = torch.sigmoid(a[:, :3 * H]).split(H, dim=1)
        c_new = f * c + i * torch.tanh(a[:, 3 * H:])
        h_new = o * torch.tanh(c_new)
        return zh * h + (1 - zh) * h_new, zc * c + (1 - zc) * c_new

    def appearance(self, frame, a, drop):
        g = glimpse(frame, a, self.cfg.glimpse_hw)
        x, n = g - g.mean(dim=(2, 3), keepdim=True), 0
        for spec in self.cfg.v1:
            if spec[0] == "conv":
                n += 1
                _, _, _, stride, pad, groups = spec
                if isinstance(pad, tuple):  # (top, bottom, left, right) -> F.pad's (l, r, t, b)
                    x, pad = F.pad(x, (pad[2], pad[3], pad[0], pad[1])), 0
                x = F.conv2d(x, self.p(f"v1.conv{n}.W"), self.p(f"v1.conv{n}.b"), stride, pad, groups=groups)
            elif spec[0] == "pool":
                x = F.max_pool2d(x, spec[1], spec[2])
            elif spec[0] == "lrn":
                x = F.local_response_norm(x, LRN["size"], LRN["alpha"], LRN["beta"], LRN["k"])
            else:
                x = ACT[spec[0]](x)
        f = x if drop is None else x * drop / (1 - self.cfg.dropout)
        return g, f, F.elu(F.conv2d(f, self.p("ventral.W"), self.p("ventral.b")))

    def step(self, frame, a, h, c, alpha, noise):
        """One time step (eqs. 2-8); ``noise`` a dict of tensors or None (evaluation)."""
        cfg, B = self.cfg, frame.shape[0]
        g, d, nu = self.appearance(frame, a, None if noise is None else noise["drop"])
        filters = []
        for i, (k, maps) in enumerate(cfg.dfn, 1):  # per-sample kernels as one grouped conv
            hid = F.elu(alpha @ self.p(f"dfn{i}.hid_W") + self.p(f"dfn{i}.hid_b"))
            w = hid @ self.p(f"dfn{i}.ker_W") + self.p(f"dfn{i}.ker_b")
            b = hid @ self.p(f"dfn{i}.bias_W") + self.p(f"dfn{i}.bias_b")
            cin, hv, wv = d.shape[1:]
            d = F.conv2d(d.reshape(1, B * cin, hv, wv), w.reshape(B * maps, cin, k, k), b.reshape(-1),
                         padding=k // 2, groups=B)
            d = F.elu(d.reshape(B, maps, hv, wv))
            filters += [w, b]
        logits = F.conv2d(d, self.p("locmap.W"), self.p("locmap.b"))
        s = torch.sigmoid(logits)
        v = self._dense("feat", torch.cat([(nu * s).reshape(B, -1), a], dim=1), "elu")
        zh, zc = (cfg.zoneout, cfg.zoneout) if noise is None else (noise["zh"], noise["zc"])
        h, c = self._lstm(v, h, c, zh, zc)
        m = self._dense("mask", s.reshape(B, -1), "elu")
        d_att = self._dense("att2", self._dense("att1", torch.cat([h, m], dim=1), "elu"), "tanh")
        d_box = self._dense("box2", self._dense("box1", h, "elu"), "tanh")
        a_next = a + torch.tanh(self.p("att_gain")) * d_att
        return dict(a_next=a_next, h=h, c=c, pred=a + d_box, logits=logits[:, 0], g=g, filters=filters)

    def init(self, frame0, box0):
        """Attention a_1 and the LSTM state from the first frame and box."""
        cfg, B = self.cfg, frame0.shape[0]
        H, W = frame0.shape[2:]
        s = cfg.init_window_scale
        y, x, h, w = box0.unbind(1)
        win = torch.stack([y - (s - 1) * h / 2, x - (s - 1) * w / 2, s * h, s * w], dim=1)
        a = win / win.new_tensor([H, W, H, W]) + 0.25 * torch.tanh(self.p("att_bias"))
        _, _, nu = self.appearance(frame0, a, None)
        v = self._dense("feat", torch.cat([nu.reshape(B, -1), a], dim=1), "elu")
        zero = frame0.new_zeros(B, cfg.n_units)
        h, c = self._lstm(v, zero, zero, 0.0, 0.0)
        return a, h, c

    def forward(self, frames, boxes, presence, noise=None):
        """As :func:`minihart.model.hart.forward`: returns a dict with ``loss``, ``pred``,
        ``att`` (pixels), ``logits`` and the loss ``terms``."""
        cfg = self.cfg
        B, T, _, H, W = frames.shape
        scale = frames.new_tensor([H, W, H, W])
        a, h, c = self.init(frames[:, 0], boxes[:, 0])
        alpha, steps = h, []
        for t in range(T):
            o = self.step(frames[:, t], a, h, c, alpha, None if noise is None else noise[t])
            steps.append(dict(o, a=a))
            a, h, c, alpha = o["a_next"], o["h"], o["c"], o["h"]
        pred = torch.stack([s["pred"] for s in steps], 1) * scale
        att = torch.stack([s["a"] for s in steps], 1) * scale
        logits = torch.stack([s["logits"] for s in steps], 1)
        pres = presence.to(frames.dtype).clone()
        pres[:, 0] = 0
        safe = torch.where(pres[..., None] > 0, boxes, boxes.new_tensor([0, 0, 1, 1]))
        wt = pres / pres.sum().clamp(min=1)
        lt = (_neg_log_clip(_iou(pred, safe), 1e-4) * wt).sum()          # eq. (10)
        area = safe[..., 2] * safe[..., 3]
        cover = _neg_log_clip(_intersection(att, safe) / torch.where(area > 0, area, torch.ones_like(area)), 1e-4)
        frame = att.new_tensor([0, 0, H, W]).expand_as(att)
        ls = ((cover + _neg_log_clip(1 - _iou(att, frame), 1e-4)) * wt).sum()  # eq. (11)
        la = self._appearance_loss(logits, safe, att.detach(), pres, wt)    # eq. (12)
        lam = self.p("loss_v") ** 2 + 1e-8
        total = (lam * torch.stack([lt, ls, la])).sum() - torch.log(lam).sum()
        r_theta = sum((v * v).sum() for k, v in self.w.items() if is_weight(k.replace(":", ".")))
        r_psi = sum((f * f).sum() for s in steps for f in s["filters"])
        loss = total + cfg.l2 * 0.5 * (r_theta + r_psi / (B * T))
        return dict(loss=loss, pred=pred, att=att, logits=logits, terms=dict(tracking=lt, attention=ls, appearance=la))

    @staticmethod
    def _appearance_loss(logits, box, att, pres, wt):
        hv, wv = logits.shape[2:]

        def inside(k, n):  # tau of eq. (12): cell centres inside the box
            centre = att[..., k, None] + (torch.arange(n, dtype=att.dtype, device=att.device) + 0.5) \
                * (att[..., k + 2, None] / n)
            return (centre >= box[..., k, None]) & (centre < box[..., k, None] + box[..., k + 2, None])

        tau = (inside(0, hv)[..., :, None] & inside(1, wv)[..., None, :]).to(logits.dtype) * pres[..., None, None]
        frac_pos = tau.sum(dim=(-2, -1), keepdim=True) / (hv * wv)
        frac = torch.where(tau > 0, frac_pos, 1 - frac_pos)
        weight = wt[..., None, None] / (hv * wv) / torch.where(frac > 0, frac, torch.ones_like(frac))
        return F.binary_cross_entropy_with_logits(logits, tau, weight=weight, reduction="sum")
