"""Training from scratch: the loss, schedules, run directory, resume, evaluate, ImageNet-style folders, errors."""

import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from darts_nas.cli import main
from darts_nas.config import train_preset_config
from darts_nas.data.augment import color_jitter, hsv_to_rgb, rgb_to_hsv
from darts_nas.data.folder import list_image_folder
from darts_nas.data.stream import StreamingLoader, random_resized_crop_box
from darts_nas.errors import DartsNasError
from darts_nas.genotypes import get_genotype
from darts_nas.nets import NetworkCIFAR
from darts_nas.run import resume_training, start_training
from darts_nas.run.train import TrainRun, evaluate_checkpoint, load_network, load_train_data, training_loss

from conftest import copy_run, quiet, tiny_train as tiny  # noqa: E402


def strip_times(history):
    return [{k: v for k, v in h.items() if k not in ("seconds", "train_seconds", "images_per_s")} for h in history]


# ---------------------------------------------------------------------------------------------------------------
def test_training_loss_is_cross_entropy_plus_weighted_auxiliary():
    torch.manual_seed(0)
    model = NetworkCIFAR(get_genotype("DARTS_V2"), C=4, num_classes=5, layers=3).train()
    x, y = torch.randn(6, 3, 16, 16), torch.tensor([0, 1, 2, 3, 4, 0])
    eps, K = 0.1, 5
    loss, logits = training_loss(model, x, y, 0.4, eps)
    with torch.no_grad():
        logits2, aux = model.forward_with_aux(x)  # batch-statistics BN: same input, same output

    def smoothed(z):  # -(1 - eps) log p_y - eps/K sum_k log p_k, averaged over the batch
        logp = z.double().log_softmax(1)
        return (-(1 - eps) * logp[torch.arange(6), y] - eps / K * logp.sum(1)).mean()

    expected = smoothed(logits2) + 0.4 * smoothed(aux)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    torch.testing.assert_close(logits, logits2)


def test_bf16_autocast_step_runs_and_is_close_to_fp32():
    from darts_nas.run.train import train_step
    torch.manual_seed(0)
    a = NetworkCIFAR(get_genotype("DARTS_V2"), C=4, num_classes=5, layers=3).train()
    b = NetworkCIFAR(get_genotype("DARTS_V2"), C=4, num_classes=5, layers=3).train()
    b.load_state_dict(a.state_dict())
    x, y = torch.randn(4, 3, 16, 16), torch.tensor([0, 1, 2, 3])
    la, _ = train_step(a, torch.optim.SGD(a.parameters(), lr=0.01), x, y, precision="fp32")
    lb, logits = train_step(b, torch.optim.SGD(b.parameters(), lr=0.01), x, y, precision="bf16")
    assert lb.dtype == torch.float32 and torch.isfinite(logits).all()
    assert lb.item() == pytest.approx(la.item(), rel=0.05)


def test_schedules_are_the_recipes():
    run = TrainRun.__new__(TrainRun)
    run.config = train_preset_config("darts-cifar10-eval")
    assert run.lr_at(0) == pytest.approx(0.025)
    assert run.lr_at(300) == pytest.approx(0.0125)
    assert run.lr_at(599) == pytest.approx(0.0125 * (1 + math.cos(math.pi * 599 / 600)))
    assert run.drop_path_at(0) == 0.0 and run.drop_path_at(300) == pytest.approx(0.1)
    assert run.drop_path_at(599) == pytest.approx(0.2 * 599 / 600)
    run.config = train_preset_config("darts-imagenet-eval")
    assert run.lr_at(0) == pytest.approx(0.1) and run.lr_at(10) == pytest.approx(0.1 * 0.97**10)
    c = run.config
    assert (c.batch_size, c.weight_decay, c.label_smoothing, c.epochs, c.channels, c.layers, c.auxiliary_weight) == \
        (128, 3e-5, 0.1, 250, 48, 14, 0.4)
    c = train_preset_config("darts-cifar10-eval")
    assert (c.batch_size, c.lr, c.lr_min, c.momentum, c.weight_decay, c.grad_clip, c.cutout, c.drop_path_prob,
            c.auxiliary_weight, c.epochs, c.channels, c.layers) == (96, 0.025, 0.0, 0.9, 3e-4, 5.0, 16, 0.2, 0.4,
                                                                   600, 36, 20)


def _manual_accuracy(model_path, config):
    """Accuracy of the saved weights computed without the library's loaders: normalize by hand, argmax."""
    from darts_nas.data import load_dataset
    from darts_nas.nets import network_from_hparams

    state = torch.load(model_path, weights_only=True)
    model = network_from_hparams(state["model_hparams"])
    model.load_state_dict(state["model"])
    model.eval()
    train = load_dataset("synthetic", synthetic_size=config.synthetic_size, image_size=config.image_size,
                         seed=config.seed, train=True)
    test = load_dataset("synthetic", synthetic_size=config.synthetic_size // 4, image_size=config.image_size,
                        seed=config.seed, train=False)
    mean = torch.tensor(train.mean).view(1, 3, 1, 1)
    std = torch.tensor(train.std).view(1, 3, 1, 1)
    with torch.no_grad():
        pred = model((test.images.float() / 255 - mean) / std).argmax(1)
    return (pred == test.labels).float().mean().item()


def test_run_writes_its_files_and_evaluate_agrees(tmp_path):
    c = tiny(epochs=2)
    result = start_training(c, tmp_path, echo=quiet).run()
    assert result.finished and result.epochs_done == 2
    names = {p.name for p in tmp_path.iterdir()}
    assert {"checkpoint.pt", "last.pt", "best.pt", "metrics.jsonl", "config.json", "network.json", "genotype.txt",
            "genotype.json"} <= names
    lines = [json.loads(s) for s in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines] == [1, 2]
    assert [r["drop_path_prob"] for r in lines] == [0.0, pytest.approx(0.1)]
    assert all({"train_loss", "test_acc", "test_top5", "lr", "images_per_s"} <= set(r) for r in lines)
    net = json.loads((tmp_path / "network.json").read_text())
    assert net["params"] < net["params_total"] and net["multiply_adds"] > 0
    manual = _manual_accuracy(tmp_path / "last.pt", c)
    assert lines[-1]["test_acc"] == pytest.approx(manual)
    r = evaluate_checkpoint(tmp_path, device="cpu", progress=False, echo=quiet)
    assert r["top1"] == pytest.approx(manual) and r["images"] == 16 and r["epoch"] == 2
    best = max(lines, key=lambda r: r["test_acc"])
    assert torch.load(tmp_path / "best.pt", weights_only=True)["epoch"] == best["epoch"]


def test_resume_matches_an_uninterrupted_run(tmp_path):
    straight = start_training(tiny(), tmp_path / "a", echo=quiet)
    straight.run()
    first = start_training(tiny(), tmp_path / "b", echo=quiet)
    assert not first.run(stop_after=1).finished
    resumed = resume_training(tmp_path / "b", echo=quiet)
    assert resumed.epoch == 1
    resumed.run()
    sa, sb = straight.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert strip_times(straight.history) == strip_times(resumed.history)


def test_resume_refuses_changes_and_other_checkpoints(tmp_path, search_run):
    start_training(tiny(epochs=1), tmp_path / "t", echo=quiet).run()
    with pytest.raises(DartsNasError, match="drop --lr"):
        resume_training(tmp_path / "t", lr=0.1)
    with pytest.raises(DartsNasError, match="already holds a run"):
        start_training(tiny(epochs=1), tmp_path / "t", echo=quiet)
    search = copy_run(search_run.dir, tmp_path / "s")  # a finished search
    with pytest.raises(DartsNasError, match="'darts-nas/search' checkpoint, not a 'darts-nas/train' one"):
        resume_training(search)
    with pytest.raises(DartsNasError, match="not a trained network"):
        load_network(search)
    # The weights of one genotype's network do not load into another's.
    with pytest.raises(DartsNasError, match="do not fit the network"):
        load_network(tmp_path / "t" / "last.pt", genotype="NASNet")


def test_nan_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    run = start_training(tiny(epochs=3, grad_clip=0.0), tmp_path, echo=quiet)
    run.run(stop_after=1)
    good = {k: v.clone() for k, v in run.model.state_dict().items()}
    run.lr_at = lambda epoch: 1e30  # epoch 2 diverges
    with pytest.raises(DartsNasError, match=r"became (nan|inf) in epoch 2.*last good checkpoint \(epoch 1\)"):
        run.run()
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert state["epoch"] == 1
    assert all(torch.equal(state["model"][k], good[k]) for k in good)
    assert torch.load(tmp_path / "last.pt", weights_only=True)["epoch"] == 1


def test_bench_train_smoke(capsys):
    assert main(["bench", "train", "--batch-size", "4", "--channels", "4", "--layers", "3", "--steps", "1",
                 "--warmup", "0"]) == 0
    out = capsys.readouterr().out
    assert "DARTS_V2" in out and "img/s" in out


def test_sample_demo_preset_and_limits(tmp_path):
    c = train_preset_config("eval-demo", channels=4, layers=3, epochs=1, limit=64, test_limit=40, progress=False,
                            device="cpu")
    run = start_training(c, tmp_path, echo=quiet)
    assert len(run.data.train) == 64 and len(run.data.test) == 40
    run.run()


# ---------------------------------------------------------------------------------------------------------------
# ImageNet-style folders
# ---------------------------------------------------------------------------------------------------------------
def _make_folder(root, classes=("n01", "n02", "n03"), per_class=(6, 2), seed=0):
    rng = np.random.default_rng(seed)
    for split, n in zip(("train", "val"), per_class):
        for k, cls in enumerate(classes):
            d = root / split / cls
            d.mkdir(parents=True)
            for i in range(n):
                w, h = int(rng.integers(40, 90)), int(rng.integers(40, 90))
                base = np.zeros((h, w, 3), np.uint8)
                base[..., k % 3] = 200
                noise = rng.integers(0, 50, (h, w, 3), dtype=np.uint8)
                Image.fromarray(base + noise).save(d / f"img{i}.JPEG", format="JPEG")
    return root


def test_imagenet_pipeline_trains_on_a_tiny_folder(tmp_path):
    root = _make_folder(tmp_path / "imagenet")
    c = train_preset_config("darts-imagenet-eval", data=str(root), image_size=64, channels=4, layers=3,
                            batch_size=6, epochs=2, workers=0, progress=False, device="cpu")
    run = start_training(c, tmp_path / "run", echo=quiet)
    assert type(run.model).__name__ == "NetworkImageNet" and run.data.top5
    assert len(run.data.train) == 18 and len(run.data.test) == 6
    x, y = next(iter(run.data.train.epoch(torch.Generator().manual_seed(0))))
    assert x.shape == (6, 3, 64, 64) and x.dtype == torch.float32 and y.shape == (6,)
    xe, ye = next(iter(run.data.test.eval_batches()))
    assert xe.shape == (6, 3, 64, 64) and ye.tolist() == [0, 0, 1, 1, 2, 2]
    result = run.run()
    assert result.finished and "test_top5" in result.history[-1]
    assert result.history[-1]["test_top5"] == 1.0  # 3 classes: the top 5 always hold the label
    # Evaluation needs only the val split: the normalization and classes are recorded with the weights.
    import shutil
    shutil.rmtree(root / "train")
    r = evaluate_checkpoint(tmp_path / "run" / "best.pt", device="cpu", progress=False, echo=quiet)
    assert r["images"] == 6
    assert r["top1"] == pytest.approx(result.history[result.best["epoch"] - 1]["test_acc"])


def test_streaming_batches_do_not_depend_on_workers(tmp_path):
    root = _make_folder(tmp_path / "f", per_class=(4, 1))
    files, labels, classes = list_image_folder(root / "train")
    assert classes == ["n01", "n02", "n03"] and len(files) == 12
    batches = []
    for workers in (0, 2):
        loader = StreamingLoader(files, labels, 4, "cpu", image_size=32, brightness=0.4, contrast=0.4,
                                 saturation=0.4, hue=0.2, workers=workers)
        batches.append(list(loader.epoch(torch.Generator().manual_seed(3))))
    assert len(batches[0]) == 3
    for (xa, ya), (xb, yb) in zip(*batches):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)


def test_unreadable_image_in_a_worker_is_one_message(tmp_path):
    root = _make_folder(tmp_path / "f", per_class=(2, 1))
    bad = root / "train" / "n02" / "img1.JPEG"
    bad.write_bytes(b"not a jpeg")
    files, labels, _ = list_image_folder(root / "train")
    loader = StreamingLoader(files, labels, 2, "cpu", image_size=32, workers=2)
    with pytest.raises(DartsNasError) as info:
        list(loader.epoch(torch.Generator().manual_seed(0)))
    message = str(info.value)
    assert message.startswith(f"cannot read image {bad}") and "\n" not in message and "Traceback" not in message


def test_test_limit_on_folders_keeps_classes_beyond_the_first(tmp_path):
    root = _make_folder(tmp_path / "f", per_class=(2, 4))
    c = train_preset_config("darts-imagenet-eval", data=str(root), image_size=32, test_limit=4, workers=0,
                            device="cpu")
    data = load_train_data(c, torch.device("cpu"), need_train=False)
    labels = torch.cat([y for _, y in data.test.eval_batches()])
    assert len(labels) == 4 and len(set(labels.tolist())) > 1  # the first 4 would all be class 0


def test_training_folder_needs_train_and_val(tmp_path):
    (tmp_path / "only" / "train" / "a").mkdir(parents=True)
    c = train_preset_config("darts-imagenet-eval", data=str(tmp_path / "only"), device="cpu")
    with pytest.raises(DartsNasError, match=r"expected the test images in .*/val/<class>/<image>"):
        TrainRun(c, tmp_path / "run", quiet)
    c = train_preset_config("darts-imagenet-eval", data=str(tmp_path), device="cpu")
    with pytest.raises(DartsNasError, match=r"expected .*/train/<class>/<image> and .*/val/<class>/<image>"):
        TrainRun(c, tmp_path / "run", quiet)
    root = _make_folder(tmp_path / "mismatch")
    (root / "val" / "n03").rename(root / "val" / "n04")
    c = train_preset_config("darts-imagenet-eval", data=str(root), device="cpu", workers=0)
    with pytest.raises(DartsNasError, match="different class folders"):
        TrainRun(c, tmp_path / "run2", quiet)


def test_random_resized_crop_boxes():
    rng = np.random.default_rng(0)
    areas = []
    for _ in range(2000):
        W, H = int(rng.integers(100, 400)), int(rng.integers(100, 400))
        left, top, w, h = random_resized_crop_box(W, H, rng)
        assert 0 <= left and left + w <= W and 0 <= top and top + h <= H and w > 0 and h > 0
        areas.append(w * h / (W * H))
        if (w, h) != (W, H):  # not the fallback: the sampled aspect ratio, up to rounding
            assert 3 / 4 * 0.95 <= w / h <= 4 / 3 * 1.05
    areas = np.array(areas)
    assert areas.min() >= 0.08 * 0.95 and areas.max() <= 1.0
    # On a square image every crop of area fraction <= 3/4 fits whatever its aspect ratio, so below 3/4 the
    # accepted fractions are uniform: as many in [0.08, 0.39) as in [0.39, 0.70).
    sq = np.array([(lambda b: b[2] * b[3] / 320**2)(random_resized_crop_box(320, 320, rng)) for _ in range(4000)])
    low, high = ((sq >= 0.08) & (sq < 0.39)).sum(), ((sq >= 0.39) & (sq < 0.70)).sum()
    assert abs(low - high) < 4 * math.sqrt(low + high)
    assert ((sq >= 0.70) & (sq <= 1.0)).sum() > 0
    # extreme aspect ratios fall back to the largest centred crop within the ratio range
    assert random_resized_crop_box(1000, 10, np.random.default_rng(0), scale=(0.99, 1.0)) == (493, 0, 13, 10)


def test_hsv_round_trip_and_colorsys():
    import colorsys
    torch.manual_seed(0)
    x = torch.rand(3, 3, 4, 4, dtype=torch.float64)
    x[0, :, 0, 0] = 0.5  # grey: hue and saturation 0
    hsv = rgb_to_hsv(x)
    for n in range(3):
        for i in range(4):
            for j in range(4):
                ref = colorsys.rgb_to_hsv(*x[n, :, i, j].tolist())
                assert hsv[n, :, i, j].tolist() == pytest.approx(ref, abs=1e-12)
    torch.testing.assert_close(hsv_to_rgb(hsv), x)


def test_evaluate_model_top1_top5_by_hand():
    from darts_nas.data import DeviceLoader
    from darts_nas.data.dataset import ImageDataset
    from darts_nas.run.train import evaluate_model

    torch.manual_seed(0)
    n, k = 23, 9
    scores = torch.randn(n, k)
    labels = torch.randint(0, k, (n,))
    # the "image" carries its index in its first pixel; the model looks its scores up
    images = torch.zeros(n, 3, 4, 4, dtype=torch.uint8)
    images[:, 0, 0, 0] = torch.arange(n, dtype=torch.uint8)
    ds = ImageDataset(images, labels, [str(i) for i in range(k)], (0.0, 0.0, 0.0), (1 / 255, 1, 1), "t")

    class Lookup(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(()))

        def forward(self, x):
            return scores[x[:, 0, 0, 0].round().long()] + self.w

    r = evaluate_model(Lookup(), DeviceLoader(ds, torch.arange(n), 5, "cpu", augment=False))
    ranks = [(scores[i] > scores[i, labels[i]]).sum().item() for i in range(n)]  # labels outranking the true one
    assert r["top1"] == pytest.approx(sum(r_ == 0 for r_ in ranks) / n)
    assert r["top5"] == pytest.approx(sum(r_ < 5 for r_ in ranks) / n)
    assert r["loss"] == pytest.approx(F.cross_entropy(scores, labels).item(), rel=1e-6)
    assert 0 < r["top1"] < r["top5"] < 1 and r["images"] == n


def test_color_jitter():
    torch.manual_seed(0)
    x = torch.rand(16, 3, 8, 8) * 0.5 + 0.25
    g = torch.Generator().manual_seed(0)
    assert torch.equal(color_jitter(x, g), x)  # no strength: identity
    y = color_jitter(x, torch.Generator().manual_seed(0), brightness=0.4)
    ratio = (y / x).reshape(16, -1)
    unclipped = (y < 1).reshape(16, -1).all(1)
    assert torch.allclose(ratio[unclipped], ratio[unclipped][:, :1].expand_as(ratio[unclipped]), atol=1e-5)
    assert ratio.min() >= 0.6 - 1e-5 and ratio.max() <= 1.4 + 1e-5
    # a hue shift keeps value (max channel) and saturation, and moves hue by one amount per image
    z = color_jitter(x, torch.Generator().manual_seed(1), hue=0.2)
    hx, hz = rgb_to_hsv(x), rgb_to_hsv(z)
    torch.testing.assert_close(hz[:, 1:], hx[:, 1:], atol=1e-5, rtol=1e-5)
    shift = ((hz[:, 0] - hx[:, 0] + 0.5) % 1.0 - 0.5).reshape(16, -1)
    assert torch.allclose(shift, shift[:, :1].expand_as(shift), atol=1e-4) and shift.abs().max() <= 0.2 + 1e-5

    def gray(t):
        return 0.299 * t[:, 0:1] + 0.587 * t[:, 1:2] + 0.114 * t[:, 2:3]

    # contrast: y - m = f (x - m) with m the image's mean grey level, one f per image in [0.6, 1.4]
    y = color_jitter(x, torch.Generator().manual_seed(2), contrast=0.4)
    m = gray(x).mean((1, 2, 3), keepdim=True)
    f = ((y - m) / (x - m)).reshape(16, -1)
    assert torch.allclose(f, f.median(1, keepdim=True).values.expand_as(f), atol=1e-3)
    assert f.min() >= 0.6 - 1e-3 and f.max() <= 1.4 + 1e-3
    # saturation: y - g = f (x - g) with g each pixel's grey level
    y = color_jitter(x, torch.Generator().manual_seed(3), saturation=0.4)
    d = x - gray(x)
    f = ((y - gray(x))[d.abs() > 0.02] / d[d.abs() > 0.02])
    assert f.min() >= 0.6 - 1e-3 and f.max() <= 1.4 + 1e-3
    # strengths above 1 never give negative factors (which would invert the image)
    y = color_jitter(x, torch.Generator().manual_seed(4), brightness=3.0)
    assert (y >= 0).all() and ((y / x).reshape(16, -1).min(1).values >= -1e-6).all()


# ---------------------------------------------------------------------------------------------------------------
# the command line
# ---------------------------------------------------------------------------------------------------------------
def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "darts_nas.cli", *args], capture_output=True, text=True, cwd=cwd)


def test_cli_train_evaluate_info(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "--dataset", "synthetic", "--synthetic-size", "64", "--image-size", "16", "--channels",
                 "4", "--layers", "3", "--batch-size", "16", "--epochs", "1", "--device", "cpu", "--no-progress",
                 "--out", str(out), "--genotype", "PDARTS"])
    assert code == 0
    text = capsys.readouterr().out
    assert "final test accuracy" in text and "PDARTS cell" in text
    assert main(["evaluate", str(out / "last.pt"), "--device", "cpu", "--json"]) == 0
    r = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert r["images"] == 16
    assert main(["info", str(out), "--json"]) == 0  # a training run: the network it trained
    info = json.loads(capsys.readouterr().out)
    assert info["genotype"] == get_genotype("PDARTS").to_text()
    assert info["params"] == json.loads((out / "network.json").read_text())["params"]


@pytest.mark.parametrize("args, message", [
    (["train", "--genotype", "NOT_A_CELL", "--device", "cpu"], "cannot load genotype 'NOT_A_CELL'"),
    (["train", "--genotype", "Genotype(normal=[('sep_conv_9x9', 0), ('skip_connect', 1)], normal_concat=[2], "
                             "reduce=[('skip_connect', 0), ('skip_connect', 1)], reduce_concat=[2])"],
     "unknown op 'sep_conv_9x9'"),
    (["train", "--dataset", "cifar10", "--data", "/nonexistent/x", "--no-download", "--device", "cpu"],
     "CIFAR-10 not found"),
    (["evaluate", "/nonexistent/best.pt"], "no checkpoint at"),
    (["info", "NOT_A_CELL"], "cannot load genotype"),
    (["info", "darts_v2_imagenet", "--dataset", "cifar10"], "drop --dataset"),
    (["train", "--drop-path-prob", "1.5"], "--drop-path-prob must be in"),
    (["train", "--dataset", "imagenet", "--image-size", "200"], "multiple of 32"),
    (["info", "DARTS_V2", "--image-size", "30"], "multiple of 4"),
])
def test_cli_errors_are_one_line(tmp_path, args, message):
    p = run_cli(*args, cwd=tmp_path)
    assert p.returncode == 2
    assert "Traceback" not in p.stderr
    assert p.stderr.startswith("darts-nas: error:") and message in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1


def test_cli_evaluate_of_a_search_checkpoint_is_refused(search_run):
    p = run_cli("evaluate", str(search_run.dir))  # a finished search
    assert p.returncode == 2 and "not a trained network" in p.stderr and "Traceback" not in p.stderr


@pytest.mark.parametrize("target", ["dir", "last.pt", "checkpoint.pt"])
def test_evaluate_trained_reads_the_checkpoint_once(tmp_path, monkeypatch, target):
    from darts_nas.run import evaluate_trained

    start_training(tiny(epochs=1), tmp_path / "t", echo=quiet).run()
    path = tmp_path / "t" if target == "dir" else tmp_path / "t" / target
    real = torch.load
    loads = []

    def counting(*a, **k):
        loads.append(a[0])
        return real(*a, **k)

    monkeypatch.setattr(torch, "load", counting)
    r = evaluate_trained(path, device="cpu", echo=quiet)
    assert len(loads) == 1, loads
    assert r["top1"] == pytest.approx(evaluate_checkpoint(tmp_path / "t" / (target if target != "dir" else "last.pt"),
                                                          device="cpu", progress=False, echo=quiet)["top1"])
