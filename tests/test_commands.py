"""Smoke tests of the commands a user types: train, evaluate, track (tiny sizes, CPU)."""
import csv
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from minihart import evaluate, track, train
from minihart.checkpoint import load

TINY_RUN = ["--steps", "4", "--eval-every", "2", "--batch-size", "2", "--eval-sequences", "4",
            "--no-final-eval", "--quiet"]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _rows(path):
    with open(path) as f:
        return [{k: v for k, v in r.items() if k != "seconds"} for r in csv.DictReader(f)]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("run") / "r")
    assert train.main(TINY_RUN + ["--out", out]) == 0
    return out


def test_train_writes_a_complete_run_folder(run_dir):
    for name in ("config.json", "metrics.csv", "training.png", "last.npz", "best.npz"):
        assert os.path.isfile(os.path.join(run_dir, name)), name
    rows = _rows(os.path.join(run_dir, "metrics.csv"))
    assert [int(r["step"]) for r in rows] == [2, 4]
    assert all(0 <= float(r["test_iou"]) <= 1 and float(r["loss"]) > 0 for r in rows)
    params, cfg, extra = load(os.path.join(run_dir, "last.npz"))
    assert cfg.name == "synthetic" and "state" in extra and any(k.startswith("opt/") for k in extra)


def test_evaluate_writes_results_plot_and_video(run_dir, capsys):
    assert evaluate.main(["--run", run_dir, "--sequences", "4", "--seq-len", "6"]) == 0
    out = os.path.join(run_dir, "eval")
    for name in ("results.json", "evaluation.png", "tracking.gif"):
        assert os.path.isfile(os.path.join(out, name)), name
    assert "average IoU over 6 steps" in capsys.readouterr().out


def test_summarize_known_answer():
    iou = np.array([[1.0, 0.5, 0.25], [1.0, 0.75, 0.0]])
    scored = np.array([[0, 1, 1], [0, 1, 0]])
    r = evaluate.summarize(iou, scored)
    assert r["mean_iou"] == pytest.approx(0.5)
    assert r["iou_per_step"] == pytest.approx([0.625, 0.25])
    assert r["success"][0] == pytest.approx(1.0) and r["success"][-1] == 0.0


def _otb_folder(tmp_path, n=6, H=60, W=80):
    import imageio.v2 as imageio
    from minihart.data.synthetic import sequence
    frames, boxes = sequence((5, 1, 0), n, (H, W), 1)
    (tmp_path / "seq" / "img").mkdir(parents=True)
    for i, f in enumerate(frames):
        imageio.imwrite(tmp_path / "seq" / "img" / f"{i + 1:04d}.jpg", (f[0] * 255).astype(np.uint8))
    xywh = boxes[:, [1, 0, 3, 2]]
    np.savetxt(tmp_path / "seq" / "groundtruth_rect.txt", xywh, fmt="%.2f", delimiter=",")
    return str(tmp_path / "seq"), xywh


def test_track_an_otb_folder_and_score_it(run_dir, tmp_path, capsys):
    folder, xywh = _otb_folder(tmp_path)
    out = str(tmp_path / "trk")
    assert track.main(["--checkpoint", os.path.join(run_dir, "best.npz"), "--video", folder,
                       "--out", out, "--gif"]) == 0
    boxes = np.loadtxt(os.path.join(out, "seq.txt"), delimiter=",")
    assert boxes.shape == (6, 4)
    np.testing.assert_allclose(boxes[0], xywh[0], atol=0.01)
    for name in ("seq.gif", "seq.json", "seq_time.txt", os.path.join("times", "seq_time.txt")):
        assert os.path.isfile(os.path.join(out, name)), name
    assert np.loadtxt(os.path.join(out, "seq_time.txt")).shape == (6,)
    assert "average IoU" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["--box", "10,10,0,5"], "h <= 0 or w <= 0"),
    (["--box", "500,10,5,5"], "entirely outside"),
    (["--box", "1,2,3"], "four numbers"),
])
def test_track_rejects_bad_boxes(run_dir, tmp_path, capsys, argv, message):
    folder, _ = _otb_folder(tmp_path)
    assert track.main(["--checkpoint", os.path.join(run_dir, "best.npz"), "--video", folder] + argv) == 2
    assert message in capsys.readouterr().err


def test_a_folder_of_mixed_images_reads_as_one_rgb_video(tmp_path, capsys):
    """Grey, palette, RGBA and 16-bit PNGs in one folder (np.stack used to fail on them, and a
    16-bit frame would have been scaled by 1/255 as if it were 8-bit)."""
    from PIL import Image
    rgb = np.random.default_rng(0).integers(0, 256, (12, 16, 3), dtype=np.uint8)
    grey16 = np.full((12, 16), 0x1234, np.uint16)
    Image.fromarray(rgb).save(tmp_path / "0.png")
    Image.fromarray(rgb[..., 0]).save(tmp_path / "1.png")
    Image.fromarray(rgb).convert("RGBA").save(tmp_path / "2.png")
    Image.fromarray(rgb).convert("P").save(tmp_path / "3.png")
    Image.fromarray(grey16).save(tmp_path / "4.png")
    (tmp_path / "5.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="cannot read image .*5.png"):  # minihart.data.otb.read_image
        track.read_frames(str(tmp_path))
    os.remove(tmp_path / "5.png")
    frames, truth, presence = track.read_frames(str(tmp_path))
    assert frames.shape == (5, 12, 16, 3) and frames.dtype == np.uint8 and truth is None and presence is None
    np.testing.assert_array_equal(frames[0], rgb)
    np.testing.assert_array_equal(frames[1], np.repeat(rgb[..., :1], 3, axis=2))
    np.testing.assert_array_equal(frames[2], rgb)
    assert (frames[4] == 0x12).all()  # the high byte


def test_track_rejects_unreadable_video_and_bad_checkpoints(run_dir, tmp_path, capsys):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    ckpt = os.path.join(run_dir, "best.npz")
    assert track.main(["--checkpoint", ckpt, "--video", str(bad), "--box", "1,1,4,4"]) == 2
    assert "not a readable video" in capsys.readouterr().err
    corrupt = tmp_path / "c.npz"
    corrupt.write_bytes(b"PK\x03\x04 broken")
    assert track.main(["--checkpoint", str(corrupt), "--video", str(bad), "--box", "1,1,4,4"]) == 2
    assert "not a readable .npz" in capsys.readouterr().err
    assert evaluate.main(["--checkpoint", str(tmp_path / "missing.npz")]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.parametrize("command, flag, value, message", [
    (train, "--batch-size", "0", "must be at least 1"), (train, "--steps", "0", "must be at least 1"),
    (train, "--clip", "-1", "must be at least 0"),  # a negative clip flipped every gradient
    (train, "--eval-every", "0", "must be at least 1"),  # was a ZeroDivisionError
    (train, "--max-len", "3", "must be at least 5"), (train, "--minutes", "0", "must be above 0"),
    (train, "--minutes", "nan", "must be a number"), (train, "--threshold", "1.5", "must be at most 1"),
    (train, "--seed", "-1", "must be at least 0"), (train, "--steps", "x", "invalid int value"),
    (train, "--mask-lost", "yes", "expected on or off, got 'yes'"),
    (train, "--map-lost", "yes", "expected on or off, got 'yes'"),
    (evaluate, "--seq-len", "1", "must be at least 2"),  # one frame has no prediction to score
    (evaluate, "--sequences", "0", "must be at least 1"), (evaluate, "--batch-size", "0", "must be at least 1"),
    (track, "--max-frames", "1", "must be at least 2")])
def test_bad_numbers_on_the_command_line_name_their_flag(command, flag, value, message, capsys):
    required = {train: [], evaluate: ["--run", "r"], track: ["--checkpoint", "c", "--video", "v"]}[command]
    with pytest.raises(SystemExit) as exc:
        command.main(required + [flag, value])
    assert exc.value.code == 2 and f"argument {flag}: {message}" in capsys.readouterr().err


def test_train_bad_input_gives_messages_not_tracebacks(run_dir, tmp_path, capsys):
    assert train.main(["--preset", "nope", "--out", str(tmp_path / "a")] + TINY_RUN) == 2
    assert "unknown preset 'nope'" in capsys.readouterr().err
    assert train.main(["--resume", run_dir, "--preset", "kth"] + TINY_RUN) == 2
    assert "made with --preset synthetic" in capsys.readouterr().err
    assert train.main(["--resume", run_dir, "--dataset", "kth"] + TINY_RUN) == 2  # was a KeyError traceback
    assert "made with --dataset synthetic, not kth" in capsys.readouterr().err
    for flag, value in (("--lr", "0.5"), ("--clip", "1.0"), ("--seed", "3"), ("--max-len", "9")):
        assert train.main(["--resume", run_dir, flag, value] + TINY_RUN) == 2  # was silently ignored
        assert f"made with {flag} " in capsys.readouterr().err
    assert train.main(["--resume", str(tmp_path / "none")] + TINY_RUN) == 2
    assert "no checkpoint" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        train.main(["--dataset", "mnist"])
    assert "invalid choice: 'mnist'" in capsys.readouterr().err


def test_device_gpu_without_gpu_is_a_clear_error(tmp_path, capsys):
    from minihart.backend import gpu_available
    if gpu_available():
        pytest.skip("this machine has a GPU")
    assert train.main(["--device", "gpu", "--out", str(tmp_path / "g")] + TINY_RUN) == 2
    assert "device 'gpu' was requested but cannot be used" in capsys.readouterr().err


def test_train_evaluate_and_track_on_the_gpu_path_of_the_cupy_emulator(run_dir, emulator, tmp_path, capsys):
    """``--device gpu`` end to end on the CPU stand-in for CuPy: batches and masks made on the
    "device", fused kernels, checkpoints written from it. Training follows the CPU run (same
    data and seeds; the masks differ, so only loosely) and resumes; evaluation runs; tracking
    gives the CPU path's boxes (adapted to the first frame for 5 steps, not 50: the emulator is slow)."""
    out = str(tmp_path / "g")
    assert train.main(["--device", "gpu", "--out", out] + TINY_RUN) == 0
    gpu, cpu = _rows(os.path.join(out, "metrics.csv")), _rows(os.path.join(run_dir, "metrics.csv"))
    assert [r["step"] for r in gpu] == [r["step"] for r in cpu]
    assert all(abs(float(g["loss"]) - float(c["loss"])) < 0.5 for g, c in zip(gpu, cpu))
    assert train.main(["--resume", out, "--steps", "6", "--device", "gpu", "--no-final-eval", "--quiet"]) == 0
    assert evaluate.main(["--run", out, "--sequences", "2", "--seq-len", "4", "--device", "gpu"]) == 0
    folder, _ = _otb_folder(tmp_path)
    for device in ("gpu", "cpu"):  # the same checkpoint tracks alike on both paths
        assert track.main(["--checkpoint", os.path.join(run_dir, "best.npz"), "--video", folder,
                           "--out", str(tmp_path / device), "--gif", "--device", device, "--adapt", "5"]) == 0
    np.testing.assert_allclose(np.loadtxt(tmp_path / "gpu" / "seq.txt", delimiter=","),
                               np.loadtxt(tmp_path / "cpu" / "seq.txt", delimiter=","), atol=0.02)
    capsys.readouterr()


@pytest.mark.parametrize("dataset", ["kth", "kitti", "sot"])
def test_real_dataset_without_data_names_folder_script_and_alternative(tmp_path, capsys, dataset):
    assert train.main(["--dataset", dataset, "--data-root", str(tmp_path / "none"),
                       "--out", str(tmp_path / "x")] + TINY_RUN) == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "none") in err and "data_scripts" in err and "--dataset synthetic" in err


def test_non_finite_loss_stops_with_a_message_and_keeps_the_checkpoint(run_dir, tmp_path, capsys, monkeypatch):
    import shutil
    run = str(tmp_path / "nf")
    shutil.copytree(run_dir, run)
    before = open(os.path.join(run, "last.npz"), "rb").read()
    real = train.forward

    def poisoned(*a, **k):
        out, cache = real(*a, **k)
        out["loss"] = out["loss"] * np.float32("nan")
        return out, cache
    monkeypatch.setattr(train, "forward", poisoned)
    assert train.main(["--resume", run, "--steps", "6", "--no-final-eval", "--quiet"]) == 2
    assert "non-finite loss at step 5" in capsys.readouterr().err
    assert open(os.path.join(run, "last.npz"), "rb").read() == before
    assert train.main(["--resume", run, "--steps", "6", "--no-final-eval", "--quiet", "--skip-nonfinite"]) == 0
    assert _rows(os.path.join(run, "metrics.csv"))[-1]["skipped"] == "2"


def test_run_in_starts_windows_from_the_models_own_state(tmp_path, monkeypatch):
    """--run-in K: a window of T frames comes with up to K T frames before it, which the model tracks
    (run_in) before the window starts from its state; the setting is kept with the run."""
    seen = []
    real = train.run_in

    def recording(params, cfg, frames, box0):
        seen.append(frames.shape[1])
        return real(params, cfg, frames, box0)
    monkeypatch.setattr(train, "run_in", recording)
    out = str(tmp_path / "run")
    assert train.main(["--steps", "8", "--batch-size", "2", "--eval-every", "4", "--eval-sequences", "2",
                       "--run-in", "2", "--mask-lost", "on", "--no-final-eval", "--quiet", "--out", out]) == 0
    assert seen and all(1 <= w <= 2 * 5 for w in seen) and len(set(seen)) > 1  # T = 5 at the start
    assert json.load(open(os.path.join(out, "config.json")))["run"]["run_in"] == 2


@pytest.mark.slow
def test_sigkill_mid_run_then_resume_equals_an_uninterrupted_run(tmp_path):
    args = [sys.executable, "-m", "minihart.train", "--steps", "12", "--eval-every", "2", "--batch-size", "2",
            "--eval-sequences", "4", "--lr-decay", "cosine", "--ema", "0.9", "--kick", "0.3", "--kick-prob", "0.5",
            "--mask-lost", "on", "--run-in", "1", "--no-final-eval", "--quiet"]  # the rate moves each step, the
    # parameters' average is kept, windows are kicked, start after a run-in, and lost frames are left out of the loss
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    full, killed = str(tmp_path / "full"), str(tmp_path / "killed")
    subprocess.run(args + ["--out", full], check=True, env=env, cwd=ROOT, capture_output=True)
    proc = subprocess.Popen(args + ["--out", killed], env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    metrics = os.path.join(killed, "metrics.csv")
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if os.path.exists(metrics) and len(_rows(metrics)) >= 2:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    n_rows = len(_rows(metrics))
    assert 2 <= n_rows < 6
    load(os.path.join(killed, "last.npz"))  # never half-written: it loads
    subprocess.run(args[:3] + ["--resume", killed, "--steps", "12", "--no-final-eval", "--quiet"],
                   check=True, env=env, cwd=ROOT, capture_output=True)
    assert _rows(metrics) == _rows(os.path.join(full, "metrics.csv"))
    for name in ("last.npz", "best.npz"):
        a, _, extra_a = load(os.path.join(killed, name))
        b, _, extra_b = load(os.path.join(full, name))
        assert all(np.array_equal(a[k], b[k]) for k in a)
        assert all(np.array_equal(extra_a[k], extra_b[k]) for k in extra_a if k.startswith("ema/"))
    params, _, extra = load(os.path.join(full, "last.npz"))
    assert any(not np.array_equal(extra[f"ema/{k}"], params[k]) for k in params)  # an average, not a copy


def test_a_run_made_before_the_decay_and_the_average_resumes_without_them(tmp_path, monkeypatch, capsys):
    """A checkpoint whose run has no ``lr_decay`` / ``ema`` / ``kick`` / ``mask_lost`` / ``map_lost`` / ``occlude``
    / ``zoom_drift`` / ``stills`` (made before they existed) resumes at a constant rate, without an average,
    kicks, masking, occluders, a drifting zoom or still windows, even for a dataset whose defaults now use them."""
    import json
    out = str(tmp_path / "old")
    assert train.main(["--steps", "2", "--eval-every", "2", "--batch-size", "2", "--eval-sequences", "2",
                       "--no-final-eval", "--quiet", "--out", out]) == 0
    params, cfg, extra = load(os.path.join(out, "last.npz"))
    run = json.loads(str(extra["run"]))
    del run["lr_decay"], run["ema"], run["kick"], run["mask_lost"], run["map_lost"], run["mix"], run["distract"]
    del run["patches"], run["occlude"], run["zoom_drift"], run["stills"]
    extra["run"] = np.array(json.dumps(run))
    from minihart.checkpoint import save
    save(os.path.join(out, "last.npz"), params, cfg, **extra)
    monkeypatch.setitem(train.DEFAULTS, "synthetic", {**train.DEFAULTS["synthetic"], "lr_decay": "cosine",
                                                       "ema": 0.999, "kick": 0.5,
                                                       "mask_lost": True, "map_lost": True,
                                                       "occlude": 0.3, "zoom_drift": 2.0,
                                                       "stills": 0.3})  # sot's
    # a flag it predates is checked against the default it resumes with, not against "None"
    assert train.main(["--resume", out, "--steps", "4", "--kick", "0.5", "--no-final-eval", "--quiet"]) == 2
    assert "made with --kick 0.0, not 0.5" in capsys.readouterr().err
    assert train.main(["--resume", out, "--steps", "4", "--no-final-eval", "--quiet"]) == 0
    run = json.loads(str(load(os.path.join(out, "last.npz"))[2]["run"]))
    assert run["lr_decay"] == "none" and run["ema"] == 0.0 and run["kick"] == 0.0 and run["mask_lost"] is False
    assert run["map_lost"] is False and run["mix"] == 0.0 and run["distract"] == 0.0
    assert run["patches"] == 0.0 and run["occlude"] == 0.0 and run["zoom_drift"] == 1.0 and run["stills"] == 0.0


def test_cosine_decay_of_the_learning_rate_over_steps_or_minutes():
    """--lr-decay cosine: the factor falls from 1 to 0.05 along the run (its steps, or its minutes
    for a run stopped by time), half way through it is (1 + 0.05) / 2; none keeps 1."""
    assert train.lr_factor("none", dict(step=7, seconds=9.0), 10, None) == 1.0
    at = [train.lr_factor("cosine", dict(step=s, seconds=0.0), 10, None) for s in (0, 5, 10, 20)]
    assert at == pytest.approx([1.0, 0.525, 0.05, 0.05])
    assert train.lr_factor("cosine", dict(step=3, seconds=45.0), None, 1.5) == pytest.approx(0.525)


def test_init_from_a_checkpoint_starts_from_its_parameters(run_dir, tmp_path, capsys):
    """--init-from: the new run's model and parameters are the checkpoint's (here one step with a
    negligible learning rate); a channel count that does not match is named."""
    ckpt = os.path.join(run_dir, "best.npz")
    out = str(tmp_path / "ft")
    assert train.main(["--init-from", ckpt, "--lr", "1e-12", "--steps", "1", "--eval-every", "1", "--batch-size", "2",
                       "--eval-sequences", "2", "--no-final-eval", "--quiet", "--out", out]) == 0
    start, cfg0, _ = load(ckpt)
    after, cfg1, _ = load(os.path.join(out, "last.npz"))
    assert cfg1 == cfg0
    assert all(np.allclose(after[k], start[k], atol=1e-6) for k in start)
    assert train.main(["--init-from", ckpt, "--channels", "3", "--out", str(tmp_path / "c")] + TINY_RUN) == 2
    assert "has 1 channels, not --channels 3" in capsys.readouterr().err


def test_a_resumed_run_keeps_how_it_was_meant_to_stop(tmp_path, monkeypatch):
    """Started with --steps 6 and interrupted after its step-2 checkpoint, a run resumed without
    --steps stops at step 6 (it used to fall back to the synthetic default of 10 minutes); a
    flag given on resume still wins."""
    out = str(tmp_path / "r")
    real, calls = train.forward, {"n": 0}

    def interrupted(*a, **k):
        calls["n"] += 1
        if calls["n"] == 4:  # step 3, after the checkpoint of step 2: as a kill would
            raise KeyboardInterrupt
        return real(*a, **k)
    monkeypatch.setattr(train, "forward", interrupted)
    args = ["--steps", "6", "--eval-every", "2", "--batch-size", "2", "--eval-sequences", "2", "--no-final-eval",
            "--quiet", "--out", out]
    assert train.main(args) == 130
    monkeypatch.setattr(train, "forward", real)
    assert [int(r["step"]) for r in _rows(os.path.join(out, "metrics.csv"))] == [2]
    assert train.main(["--resume", out, "--no-final-eval", "--quiet"]) == 0
    assert [int(r["step"]) for r in _rows(os.path.join(out, "metrics.csv"))] == [2, 4, 6]
    assert train.main(["--resume", out, "--steps", "8", "--no-final-eval", "--quiet"]) == 0
    assert [int(r["step"]) for r in _rows(os.path.join(out, "metrics.csv"))][-1] == 8


def test_progress_in_a_log_file_is_one_plain_line_per_interval(tmp_path):
    """Not a terminal: no carriage-return update per step, a line per interval (here: every update
    with interval 0, none with a long one); a log of a real run holds no carriage return."""
    import io
    log = io.StringIO()
    bar = train.Progress(10, 0, "train synthetic", disable=False, interval=0.0, stream=log)
    for i in range(3):
        bar.update({"loss": f"{i:.3f}"})
    bar.close()
    lines = log.getvalue().splitlines()
    assert len(lines) == 3 and "\r" not in log.getvalue() and lines[-1].startswith("train synthetic: step 3/10")
    quiet = io.StringIO()
    bar = train.Progress(10, 0, "x", disable=False, interval=3600.0, stream=quiet)
    for _ in range(5):
        bar.update({})
    assert quiet.getvalue() == ""
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1")
    with open(tmp_path / "train.log", "w") as f:
        subprocess.run([sys.executable, "-m", "minihart.train", "--steps", "3", "--eval-every", "3",
                        "--batch-size", "2", "--eval-sequences", "2", "--no-final-eval", "--out", str(tmp_path / "r")],
                       check=True, env=env, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT)
    text = (tmp_path / "train.log").read_text()
    assert "\r" not in text and "step 3: train IoU" in text and len(text.splitlines()) < 15
