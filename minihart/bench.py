"""``python -m minihart.bench``: how fast is minihart, and how does it compare with PyTorch?

For each preset: one training step (forward over B sequences of T frames, backward through
time, RMSProp update), tracking inference in frames per second (one sequence, and B at once),
the peak memory of a training step, and the achieved GFLOP/s against the matrix-multiply peak
measured on the same machine. FLOPs are counted analytically (2 per multiply-add of every
matrix product and convolution; the backward pass of a layer costs twice its forward, except
the glimpse, whose image gradient is never needed) and printed. The share of the peak is
taken round by round (:func:`percent_of_peak`), as the speed of a shared machine drifts.

``--against torch`` builds the same model in PyTorch (``benchmarks/torch_hart.py``) with the
same parameters, inputs and dropout/zoneout masks, first checks that outputs and gradients
agree (float32, relative error below ``TOL``), then times both in the same process,
interleaved (minihart, torch, minihart, ...), and reports medians and their ratio.
PyTorch gets as many threads as NumPy's BLAS (``OPENBLAS_NUM_THREADS``, ``OMP_NUM_THREADS``,
else all cores). ``--device gpu`` runs CuPy against PyTorch CUDA.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
import time
import tracemalloc

import numpy as np

from minihart.backend import array_module, asnumpy, to_device
from minihart.cli import keep_freed_memory, number
from minihart.gradcheck import rel_error
from minihart.model import Tracker, backward, forward, init_params, preset, sample_noise
from minihart.flops import model_flops
from minihart.model.hart import validate_inputs
from minihart.optim import RMSProp

PRESETS = ("synthetic", "kth", "kitti")
TOL = 2e-3  # float32 agreement of minihart and PyTorch before the race
PAUSE = 0.2  # s between timed runs: idle BLAS/OpenMP threads of one library stop spinning
TWIN = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks", "torch_hart.py")


def load_torch_twin(path=TWIN):
    """``TorchHART``, the model in PyTorch, from ``benchmarks/torch_hart.py`` of the repository
    (not part of the package: a checkout or an editable install has it). Loaded only for
    ``--against torch``; ``RuntimeError`` naming the file when it is missing."""
    if not os.path.isfile(path):
        raise RuntimeError(f"--against torch needs the PyTorch twin of the model, {path}, which is in the "
                           "repository's benchmarks/ folder, not in an installed package: run from a checkout")
    spec = importlib.util.spec_from_file_location("torch_hart", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.TorchHART


def threads() -> int:
    """NumPy's BLAS threads as set by the environment (all cores by default); torch gets as many."""
    return int(os.environ.get("OPENBLAS_NUM_THREADS") or os.environ.get("OMP_NUM_THREADS") or os.cpu_count())


def machine(torch=None) -> dict:
    """CPU name and the thread counts of the two libraries."""
    name = platform.processor() or "unknown CPU"
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as f:
            name = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), name)
    try:
        from threadpoolctl import threadpool_info  # noqa: PLC0415  (optional, reporting only)
        blas = sum(i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas")
    except ImportError:
        blas = threads()
    return dict(device="cpu", cpu=name, cores=os.cpu_count(), numpy_blas_threads=blas,
                torch_threads=None if torch is None else torch.get_num_threads())


def matmul_peak(mul, make, sync, n, repeat=5):
    """Best GFLOP/s of an n x n float32 matrix product (``make(n)`` builds an operand)."""
    a, b = make(n), make(n)
    mul(a, b)
    best = float("inf")
    for _ in range(repeat):
        sync()
        t = time.perf_counter()
        mul(a, b)
        sync()
        best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 / best / 1e9


def make_batch(cfg, B, T, seed=0):
    """Random frames and a box drifting across them (contents do not change the timing)."""
    rng = np.random.default_rng(seed)
    H, W = cfg.image_hw
    frames = rng.random((B, T, cfg.channels, H, W), dtype=np.float32)
    t = np.arange(T, dtype=np.float32)[None, :, None]
    boxes = np.broadcast_to(np.float32([0.3 * H, 0.3 * W, 0.3 * H, 0.2 * W]) + t * np.float32([1, 2, 0, 0]),
                            (B, T, 4)).copy()
    presence = np.ones((B, T), np.float32)
    presence[0, -1] = 0  # one absent step exercises the masks
    return frames, boxes, presence, sample_noise(cfg, rng, B, T)


def _sync(xp):
    """Waits for the device (CuPy's current stream); a no-op on NumPy."""
    cp = xp
    return (lambda: None) if xp is np else cp.cuda.get_current_stream().synchronize


class Minihart:
    """A training step and a tracker of minihart on ``xp``."""

    def __init__(self, cfg, params, batch, xp):
        device = "cpu" if xp is np else "gpu"
        validate_inputs(cfg, *batch[:3])  # once, on the host, as train does before each step
        self.cfg, self.p, self.data = cfg, to_device(params, device), to_device(list(batch), device)
        self.opt, self.sync = RMSProp(), _sync(xp)

    def outputs(self):  # no read of the device inside: a GPU step is queued without waiting
        out, cache = forward(self.p, self.cfg, *self.data, check_boxes=False)
        return out, backward(cache)

    def train_step(self):
        self.opt.step(self.p, self.outputs()[1])

    def track(self, B, n):  # Tracker.init steps on the first frame too
        frames, boxes = self.data[0][:B], self.data[1][:B]
        tr = Tracker(self.p, self.cfg).init(frames[:, 0], boxes[:, 0])
        for i in range(n):
            tr.step(frames[:, 1 + i % (frames.shape[1] - 1)])


class Torch:
    """The same for ``TorchHART`` (:func:`load_torch_twin`)."""

    def __init__(self, cfg, params, batch, device):
        import torch  # noqa: PLC0415
        self.torch, self.model = torch, load_torch_twin()(params, cfg, device=device)
        self.data = [torch.as_tensor(a, device=device) for a in batch[:3]]
        self.noise = [{k: torch.as_tensor(v, device=device) for k, v in d.items()} for d in batch[3]]
        self.opt = torch.optim.RMSprop(self.model.parameters(), lr=3.33e-5, alpha=0.9, momentum=0.9, eps=1e-10)
        self.sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
        # float32 on both sides: no TF32 in cuDNN/cuBLAS (CuPy does not use it either)
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False

    def outputs(self):
        self.opt.zero_grad()
        out = self.model(*self.data, self.noise)
        out["loss"].backward()
        return out, self.model.grads()

    def train_step(self):
        self.outputs()
        self.opt.step()

    def track(self, B, n):
        frames, boxes = self.data[0][:B], self.data[1][:B]
        with self.torch.no_grad():
            a, h, c = self.model.init(frames[:, 0], boxes[:, 0])
            alpha = h
            for t in [0] + [1 + i % (frames.shape[1] - 1) for i in range(n)]:
                o = self.model.step(frames[:, t], a, h, c, alpha, None)
                a, h, c, alpha = o["a_next"], o["h"], o["c"], o["h"]


def agreement(mh, th) -> float:
    """Largest relative error between minihart and PyTorch over loss, boxes and gradients."""
    (out, grads), (tout, tgrads) = mh.outputs(), th.outputs()
    pairs = [(out["loss"], tout["loss"]), (out["pred"], tout["pred"])] + [(grads[k], tgrads[k]) for k in grads]
    return max(rel_error(asnumpy(a), b.detach().cpu().numpy()) for a, b in pairs)


def race(fns, repeat, pause):
    """Seconds of each ``(callable, sync)``, run interleaved ``repeat`` times after a warm-up."""
    times = [[] for _ in fns]
    for r in range(repeat + 1):
        for ts, (fn, sync) in zip(times, fns):
            sync()
            t = time.perf_counter()
            fn()
            sync()
            if r:
                ts.append(time.perf_counter() - t)
            time.sleep(pause)
    return times


def percent_of_peak(flops, seconds, peak_flops, peak_seconds):
    """Median over rounds of the run's FLOP/s over the matmul's FLOP/s of the same round, in per cent.

    The speed of a shared machine drifts by tens of per cent over minutes, so each run is set
    against the product timed just before it (``race`` interleaves them), not against the best
    product of all rounds (the bench reports that figure too, as ``best_peak_percent``).
    """
    return 100 * statistics.median((flops / s) / (peak_flops / m) for s, m in zip(seconds, peak_seconds))


def peak_memory(runner, xp):
    """Bytes allocated at the peak of one training step (CuPy: the memory pool's high water)."""
    if xp is np:
        tracemalloc.start()
        runner.train_step()
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return peak
    cp = xp
    pool = cp.get_default_memory_pool()
    runner.sync()
    pool.free_all_blocks()
    runner.train_step()
    runner.sync()
    return pool.total_bytes()


def bench_preset(name, args, xp, torch_dev, matmul):
    """Every measurement of one preset; ``matmul = (n, fn)`` times an n x n product in the same race,
    so the peak is measured under the same conditions as the model."""
    cfg = preset(name)
    B, T = args.batch, args.steps
    batch = make_batch(cfg, B, T)
    params = init_params(cfg, np.random.default_rng(0))
    mh = Minihart(cfg, params, batch, xp)
    train_flops, track_flops = model_flops(cfg, cfg.image_hw, B, T)
    n = 2 if args.tiny else 2 * T
    runs = [(mh.train_step, mh.sync), (lambda: mh.track(1, n), mh.sync), (lambda: mh.track(B, n), mh.sync)]
    res = dict(preset=name, batch=B, steps=T, image_hw=list(cfg.image_hw), train_gflop=train_flops / 1e9,
               track_gflop_per_frame=track_flops / 1e9)
    if torch_dev:  # compared before any update changes the parameters
        th = Torch(cfg, params, batch, torch_dev)
        res["max_rel_error_vs_torch"] = err = agreement(mh, th)
        if not err < TOL:
            raise RuntimeError(f"{name}: minihart and PyTorch disagree (max rel. error {err:.2e} >= {TOL}); "
                               "no race")
        runs += [(th.train_step, th.sync), (lambda: th.track(1, n), th.sync), (lambda: th.track(B, n), th.sync)]
        if torch_dev == "cuda":
            th.torch.cuda.reset_peak_memory_stats()
            th.train_step()
            res["torch_peak_mib"] = th.torch.cuda.max_memory_allocated() / 2 ** 20
    mh.train_step()  # the optimiser's state exists before the peak is measured
    res["peak_mib"] = peak_memory(mh, xp) / 2 ** 20
    times = race([(matmul[1], mh.sync)] + runs, args.repeat, 0.0 if args.tiny else PAUSE)
    mm_flops, (mm, steps) = 2 * matmul[0] ** 3, (times[0], times[1])
    res["matmul_gflops"] = peak = mm_flops / min(mm) / 1e9  # best run: the peak
    times = [statistics.median(ts) for ts in times[1:]]
    for lib, (train, t1, tb) in zip(("minihart", "torch"), (times[:3], times[3:]) if torch_dev else (times,)):
        res[lib] = dict(train_ms=1e3 * train, gflops=train_flops / train / 1e9,
                        track_fps_1=n / t1, track_fps_batch=B * n / tb)
    res["minihart"]["peak_percent"] = percent_of_peak(train_flops, steps, mm_flops, mm)
    res["minihart"]["best_peak_percent"] = 100 * res["minihart"]["gflops"] / peak
    if torch_dev:
        res["ratio_train"] = res["minihart"]["train_ms"] / res["torch"]["train_ms"]
    return res


COLUMNS = (("train ms", "minihart", "train_ms", ".1f"), ("torch ms", "torch", "train_ms", ".1f"),
           ("ratio", None, "ratio_train", ".2f"), ("GFLOP/s", "minihart", "gflops", ".1f"),
           ("peak", None, "matmul_gflops", ".0f"), ("% peak", "minihart", "peak_percent", ".0f"),
           ("% best", "minihart", "best_peak_percent", ".0f"),
           ("peak MiB", None, "peak_mib", ".0f"),
           ("fps 1", "minihart", "track_fps_1", ".0f"), ("torch", "torch", "track_fps_1", ".0f"),
           ("fps B", "minihart", "track_fps_batch", ".0f"), ("torch", "torch", "track_fps_batch", ".0f"))


def table(results):
    """The results as a text table, one row per preset."""
    lines = [f"{'preset':10} {'B x T':>7} {'GFLOP':>7}" + "".join(f"{c[0]:>10}" for c in COLUMNS)]
    for r in results:
        cells = [r.get(lib, {}).get(key) if lib else r.get(key) for _, lib, key, _ in COLUMNS]
        lines.append(f"{r['preset']:10} {r['batch']:>3} x {r['steps']:<3} {r['train_gflop']:7.1f}" + "".join(
            f"{'-' if v is None else format(v, c[3]):>10}" for v, c in zip(cells, COLUMNS)))
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m minihart.bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--presets", nargs="+", default=list(PRESETS), choices=PRESETS, help="presets to time")
    ap.add_argument("--batch", type=number(int, 1), default=10, help="sequences per training step and batched tracking")
    ap.add_argument("--steps", type=number(int, 2), default=10, help="frames per sequence T")
    ap.add_argument("--repeat", type=number(int, 1), default=5, help="timed runs of each measurement (median)")
    ap.add_argument("--against", choices=["torch"], help="also time the same model in PyTorch")
    ap.add_argument("--device", choices=["cpu", "gpu"], default="cpu", help="NumPy vs PyTorch CPU, or CuPy vs CUDA")
    ap.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    ap.add_argument("--tiny", action="store_true", help="tiny sizes, one repeat: checks that the command works")
    args = ap.parse_args(argv)
    keep_freed_memory()
    if args.tiny:
        args.batch, args.steps, args.repeat = 2, 2, 1
    try:
        xp, torch = array_module(args.device), None
    except RuntimeError as exc:
        raise SystemExit(f"error: {exc}") from None
    if args.against:
        try:
            import torch  # noqa: PLC0415
        except ImportError:
            raise SystemExit("--against torch needs PyTorch: pip install torch") from None
        torch.set_num_threads(threads())
    gpu = xp is not np
    info = machine(torch)
    n = (256 if args.tiny else 2048) * (4 if gpu else 1)
    a = xp.ones((n, n), np.float32)
    info["matmul_gflops"] = peak = matmul_peak(xp.matmul, lambda k: a, _sync(xp), n)
    if gpu:
        cp = xp
        name = cp.cuda.runtime.getDeviceProperties(0)["name"]
        info["device"] = name.decode() if isinstance(name, bytes) else name
    if torch is not None:
        dev = "cuda" if gpu else "cpu"
        info["torch_matmul_gflops"] = matmul_peak(torch.matmul, lambda k: torch.ones((k, k), device=dev),
                                                  torch.cuda.synchronize if gpu else (lambda: None), n)
    try:
        results = [bench_preset(name, args, xp, args.against and ("cuda" if gpu else "cpu"), (n, lambda: a @ a))
                   for name in args.presets]
    except RuntimeError as exc:  # minihart and PyTorch disagree: no race
        raise SystemExit(f"error: {exc}") from None
    print(f"{info['device']}: {info['cpu']}, {info['cores']} cores, BLAS threads {info['numpy_blas_threads']}, "
          f"torch threads {info['torch_threads']}; float32 matmul peak {peak:.0f} GFLOP/s (NumPy/CuPy)"
          + (f", {info['torch_matmul_gflops']:.0f} (torch)" if torch is not None else ""))
    print(table(results))
    print("train: forward + backward through time + RMSProp update, median of interleaved runs; fps 1: one "
          "sequence, fps B: frames/s over B sequences at once; GFLOP per training step, counted analytically; "
          "peak: the best float32 matmul GFLOP/s among runs interleaved with this preset's; % peak: median "
          "over rounds of the step's GFLOP/s over the matmul's in the same round; % best: median step "
          "against the best matmul.")
    for r in results:
        if "max_rel_error_vs_torch" in r:
            print(f"{r['preset']}: minihart and PyTorch agree to {r['max_rel_error_vs_torch']:.1e} "
                  "(loss, boxes, every gradient; float32)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(machine=info, results=results), f, indent=1)
    return results


if __name__ == "__main__":
    main()
