"""Distributed runs on CPU with gloo, launched by torchrun as a user would: N ranks equal one process with the same
global batch and the same BatchNorm groups (every strategy, GDAS, PC-DARTS, the recurrent space, the Hessian
eigenvalue, training from scratch); the whole commands under torchrun (search, resume on as many or fewer
ranks, a rank killed mid-epoch, bad launches, training with its test accuracy reduced once, the language model,
bench --nproc); and the pieces on their own (shards, evaluation parts, messages)."""

from __future__ import annotations

import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from darts_nas import distributed
from darts_nas.cli import main
from darts_nas.data import DeviceLoader
from darts_nas.data.dataset import ImageDataset
from darts_nas.errors import DartsNasError
from darts_nas.run.checkpoint import load_checkpoint

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from distributed_cases import CASES, run_case, run_training  # noqa: E402

TINY_SEARCH = ["--dataset", "synthetic", "--synthetic-size", "48", "--batch-size", "8", "--channels", "4",
               "--layers", "3", "--nodes", "2", "--device", "cpu", "--no-progress"]


def torchrun(nproc: int, *args, timeout: int = 300, wait: bool = True):
    """`torchrun --standalone --nproc_per_node N ARGS` as a child process (one thread per rank: 2 cores here)."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", *map(str, args)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if not wait:
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)


def darts_nas_under_torchrun(nproc: int, *args, **kw):
    return torchrun(nproc, "-m", "darts_nas", *args, **kw)


def our_errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("darts-nas: error:")]


# ----------------------------------------------------------------------------------------------------------------
# two launches, one of 2 ranks and one of 3, each running many jobs in one process group (tests/dist_worker.py)
# ----------------------------------------------------------------------------------------------------------------
class Launch:
    """What one torchrun launch of tests/dist_worker.py left: each job's per-rank results."""

    def __init__(self, out: Path, nproc: int):
        self.out, self.nproc = out, nproc

    def ranks(self, job: str) -> list[dict]:
        return [torch.load(self.out / job / f"rank{r}.pt", weights_only=True) for r in range(self.nproc)]

    def command(self, job: str) -> subprocess.CompletedProcess:
        """A command's outcome as its own torchrun launch would give it: the ranks' output together, and a
        non-zero status when any rank's is."""
        ranks = [json.loads((self.out / job / f"rank{r}.json").read_text()) for r in range(self.nproc)]
        status = next((r["status"] for r in ranks if r["status"] != 0), 0)
        return subprocess.CompletedProcess(job, status, "".join(r["stdout"] for r in ranks),
                                           "".join(r["stderr"] for r in ranks))


def launch(nproc: int, out: Path, jobs: list[dict]) -> Launch:
    plan = out / "plan.json"
    plan.write_text(json.dumps(jobs))
    proc = torchrun(nproc, HERE / "dist_worker.py", out, plan, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return Launch(out, nproc)


def search_args(*args) -> list[str]:
    return ["search", *TINY_SEARCH, *map(str, args)]


TRAIN_ARGS = ["train", "--dataset", "synthetic", "--synthetic-size", "48", "--test-limit", "11", "--batch-size", "4",
              "--channels", "4", "--layers", "3", "--epochs", "1", "--device", "cpu", "--no-progress", "--lr", "0.02",
              "--scale-lr"]
LM_ARGS = ["--units", "8", "--batch-size", "4", "--bptt", "8", "--epochs", "1", "--device", "cpu", "--no-progress"]


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    """Every 2-rank job: the equivalence cases, the search straight, stopped, copied and resumed, training with
    --scale-lr, the language model's search and training, then the two launches that must fail (each rank with
    its own seed; a NaN on rank 1)."""
    from darts_nas.data.text import write_tiny_corpus

    root = tmp_path_factory.mktemp("two-ranks")
    corpus = write_tiny_corpus(root / "corpus", "ptb", lines=(120, 30, 30), words=20)
    order2 = ["--epochs", "2", "--order", "2"]
    lm = ["--data", str(corpus), *LM_ARGS]
    return launch(2, root, [
        {"name": "cases", "cases": list(CASES)},
        {"name": "straight", "argv": search_args(*order2, "--out", root / "a")},
        {"name": "part", "argv": search_args(*order2, "--out", root / "b", "--stop-after", "1")},
        {"name": "copy", "copy": [str(root / "b"), str(root / "c")]},
        {"name": "resumed", "argv": ["search", "--resume", str(root / "b")]},
        {"name": "train", "argv": [*TRAIN_ARGS, "--out", str(root / "t")]},
        {"name": "lm-search", "argv": ["search", "--preset", "darts-ptb", *lm, "--out", str(root / "s")]},
        {"name": "lm-train", "argv": ["train", "--preset", "darts-ptb-eval", *lm, "--eval-batch-size", "4",
                                      "--test-batch-size", "1", "--out", str(root / "lm")]},
        # each rank launched with its own seed: a mixed launch
        {"name": "mixed", "argv": search_args("--epochs", "1", "--out", root / "m", "--seed", "{RANK}")},
        # Rank 1's loss turns NaN in the second epoch; rank 0's own shard is fine.
        {"name": "nan", "argv": search_args("--epochs", "2", "--log-every", "1", "--out", root / "n"),
         "patch": "nan-on-rank-1"},
    ])


@pytest.fixture(scope="module")
def three_ranks(tmp_path_factory):
    """The 3-rank jobs: the equivalence cases of THREE_RANK_CASES, and a global batch 3 ranks cannot share."""
    root = tmp_path_factory.mktemp("three-ranks")
    return launch(3, root, [{"name": "cases", "cases": list(THREE_RANK_CASES)},
                            {"name": "uneven", "argv": search_args("--epochs", "1", "--out", root / "u")}])


# ----------------------------------------------------------------------------------------------------------------
# N ranks = one process with the same global batch and BatchNorm groups
# ----------------------------------------------------------------------------------------------------------------
# Three ranks (uneven BatchNorm groups on two cores) run a subset: both orders, a sampled relaxation on NAS-Bench-201,
# the recurrent space; two ranks run every case.
THREE_RANK_CASES = ("first-order", "second-order-fd", "gdas", "rnn-second-order")


@functools.lru_cache(maxsize=None)
def whole_batch_case(name: str) -> dict:
    """The case's steps on the whole batch in one process (one BatchNorm group): the same for 2 and 3 ranks."""
    return run_case(name, ghost=1)


@pytest.mark.parametrize("nproc", [2, 3])
def test_ranks_equal_one_process_with_the_same_global_batch_and_bn_groups(request, nproc):
    names = list(CASES) if nproc == 2 else list(THREE_RANK_CASES)
    ranks = request.getfixturevalue("two_ranks" if nproc == 2 else "three_ranks").ranks("cases")
    assert set(THREE_RANK_CASES) <= set(CASES)
    for name in names:
        reference = run_case(name, ghost=nproc)
        whole = whole_batch_case(name)
        for r, got in enumerate(r[name] for r in ranks):
            # Every rank holds exactly rank 0's weights, alphas, eigenvalue and cell.
            for key in ("weights", "alphas"):
                assert all(torch.equal(a, b) for a, b in zip(got[key], ranks[0][name][key])), (name, r, key)
            assert got["eigenvalue"] == ranks[0][name]["eigenvalue"] and got["genotype"] == reference["genotype"]
            # ... and they are one process's, to 1e-6 (float64: in practice 1e-14).
            for key in ("weights", "alphas"):
                diff = max((a - b).abs().max().item() for a, b in zip(got[key], reference[key]))
                assert diff < 1e-6, (name, key, diff)
            assert got["eigenvalue"] == pytest.approx(reference["eigenvalue"], rel=1e-9, abs=1e-12)
        # The check can fail: the same steps on the whole batch (one BatchNorm group, other dropout masks) differ.
        assert max((a - b).abs().max().item() for a, b in zip(reference["weights"], whole["weights"])) > 1e-4
    training = run_training(ghost=nproc)
    for r in range(nproc):
        diff = max((a - b).abs().max().item() for a, b in zip(ranks[r]["training"]["weights"], training["weights"]))
        assert diff < 1e-6, diff


# ----------------------------------------------------------------------------------------------------------------
# the commands under torchrun
# ----------------------------------------------------------------------------------------------------------------
def comparable(history):
    return [{k: v for k, v in h.items() if k != "seconds"} for h in history]


def test_search_under_torchrun_writes_once_resumes_exactly_and_on_fewer_ranks(two_ranks, tmp_path, capsys):
    root = two_ranks.out
    straight = two_ranks.command("straight")
    assert straight.returncode == 0, straight.stderr[-3000:]
    # Rank 0 alone speaks and writes: one first line, one result.
    assert straight.stdout.count("search: darts-cnn space") == 1 and "2 ranks (gloo)" in straight.stdout
    assert straight.stdout.count("derived cell") == 1
    assert sorted(p.name for p in (root / "a").iterdir()) == sorted(
        ["alphas.json", "checkpoint.pt", "config.json", "genotype.json", "genotype.txt", "metrics.jsonl"])

    part = two_ranks.command("part")
    assert part.returncode == 0, part.stderr[-3000:]
    resumed = two_ranks.command("resumed")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a, b = load_checkpoint(root / "a"), load_checkpoint(root / "b")
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert comparable(a["history"]) == comparable(b["history"])

    # The same global batch on one process: it continues (BatchNorm now sees the whole batch).
    shutil.copytree(root / "c", tmp_path / "c")  # the launch's copy of the stopped run, left as it was
    assert main(["search", "--resume", str(tmp_path / "c")]) == 0
    assert load_checkpoint(tmp_path / "c")["epoch"] == 2
    # config.json says how each invocation ran: 2 ranks x 4, then one process with the whole batch of 8.
    launch = json.loads((tmp_path / "c" / "config.json").read_text())["launch"]
    assert [(e["world_size"], e["per_rank_batch"]) for e in launch["launches"]] == [(2, 4), (1, 8)]


def rank_pids(launcher_pid: int) -> dict[int, int]:
    """RANK -> pid of the workers a torchrun process started (read from /proc)."""
    out = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            environ = (entry / "environ").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        if ppid == launcher_pid:
            for item in environ:
                if item.startswith(b"RANK="):
                    out[int(item[5:])] = int(entry.name)
    return out


def test_a_killed_rank_stops_all_keeps_the_last_checkpoint_and_the_run_resumes(tmp_path):
    run_dir = tmp_path / "k"
    proc = darts_nas_under_torchrun(2, "search", *TINY_SEARCH, "--synthetic-size", "160", "--epochs", "3",
                                    "--out", run_dir, wait=False)
    metrics = run_dir / "metrics.jsonl"
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None and not (metrics.is_file() and metrics.read_text().strip()):
        time.sleep(0.2)
    assert proc.poll() is None, proc.communicate()[1][-3000:]
    time.sleep(0.5)  # into epoch 2
    os.kill(rank_pids(proc.pid)[1], signal.SIGKILL)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert our_errors(stderr) == ["darts-nas: error: another rank stopped, so this one stopped too; the last good "
                                  "checkpoint is kept (resume with --resume RUN_DIR)"]
    state = load_checkpoint(run_dir)
    done = state["epoch"]
    assert done >= 1 and len(state["history"]) == done
    resumed = darts_nas_under_torchrun(2, "search", "--resume", run_dir)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming {run_dir} after epoch {done}/3" in resumed.stdout
    assert load_checkpoint(run_dir)["epoch"] == 3 and (run_dir / "genotype.json").is_file()


def test_bad_launches_get_one_clear_message(two_ranks, three_ranks):
    uneven = three_ranks.command("uneven")
    assert uneven.returncode != 0
    assert our_errors(uneven.stderr) == ["darts-nas: error: --batch-size 8 is the global batch, which 3 ranks cannot "
                                         "share equally; use a multiple of 3 (each rank computes batch / world size "
                                         "examples)"]
    assert not (three_ranks.out / "u").exists()

    proc = two_ranks.command("mixed")  # each rank launched with its own seed: a mixed launch
    assert proc.returncode != 0
    assert our_errors(proc.stderr) == ["darts-nas: error: the ranks were launched with different settings: rank 1 "
                                       "differs from rank 0 in seed; launch every rank with the same command and data"]


def test_cuda_ranks_beyond_the_machines_gpus_get_one_message(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "2")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(DartsNasError, match="torchrun started 4 processes on this machine but it has 2 GPUs; use "
                                            "--nproc_per_node 2 or fewer"):
        distributed.setup(torch.device("cuda"))
    with pytest.raises(DartsNasError, match="each rank takes its LOCAL_RANK's GPU; give --device cuda"):
        distributed.setup(torch.device("cuda", 1))


def test_training_under_torchrun_scales_the_lr_and_counts_each_test_image_once(two_ranks):
    proc = two_ranks.command("train")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "--scale-lr: 2 ranks x batch 4 = global batch 8; lr 0.02 x 2 = 0.04" in proc.stdout
    run = two_ranks.out / "t"
    config = json.loads((run / "config.json").read_text())
    assert (config["batch_size"], config["lr"]) == (8, 0.04)
    record = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert record["test_images"] == 11  # 6 + 5 images on the two ranks, none twice, none padded
    # One process evaluating the saved network (eval mode: BatchNorm's averaged running statistics) agrees.
    from darts_nas.run import evaluate_trained
    alone = evaluate_trained(run / "last.pt", device="cpu", echo=lambda *a: None)
    assert alone["images"] == 11 and alone["top1"] == record["test_acc"]
    assert alone["loss"] == pytest.approx(record["test_loss"], rel=1e-6)


def test_language_model_search_and_training_under_torchrun(two_ranks):
    search = two_ranks.command("lm-search")
    assert search.returncode == 0, search.stderr[-3000:]
    assert "Genotype(recurrent=" in search.stdout
    train = two_ranks.command("lm-train")
    assert train.returncode == 0, train.stderr[-3000:]
    results = json.loads((two_ranks.out / "lm" / "results.json").read_text())
    assert results["valid_ppl"] > 1 and results["test_ppl"] > 1


def test_bench_nproc_reports_scaling(tmp_path):
    out = tmp_path / "b.json"
    assert main(["bench", "search", "--nproc", "2", "--order", "1", "--batch-size", "2", "--channels", "4",
                 "--layers", "3", "--steps", "1", "--warmup", "1", "--json", str(out)]) == 0
    (row,) = json.loads(out.read_text())
    assert row["ranks"] == 2 and row["batch_size"] == 4 and row["per_rank_batch"] == 2
    assert row["efficiency"] == pytest.approx(row["single_s"] / row["median_s"])


# ----------------------------------------------------------------------------------------------------------------
# the pieces
# ----------------------------------------------------------------------------------------------------------------
def as_rank(monkeypatch, r: int, n: int) -> None:
    monkeypatch.setattr(distributed, "world_size", lambda: n)
    monkeypatch.setattr(distributed, "rank", lambda: r)


def test_loader_shards_together_are_the_single_process_batch(monkeypatch):
    g = torch.Generator().manual_seed(0)
    ds = ImageDataset(torch.randint(0, 256, (30, 3, 8, 8), generator=g, dtype=torch.uint8),
                      torch.arange(30) % 10, [str(i) for i in range(10)], (0.5,) * 3, (0.25,) * 3, "t")
    kw = dict(batch_size=6, device="cpu", crop_padding=2, cutout=3)
    whole = list(DeviceLoader(ds, torch.arange(30), **kw).epoch(torch.Generator().manual_seed(4)))
    whole_eval = list(DeviceLoader(ds, torch.arange(30), **kw).eval_batches())
    for n in (2, 3):
        parts, evals = [], []
        for r in range(n):
            as_rank(monkeypatch, r, n)
            loader = DeviceLoader(ds, torch.arange(30), sharded=True, **kw)
            parts.append(list(loader.epoch(torch.Generator().manual_seed(4))))
            evals.append(list(loader.eval_batches()))
        for step, (x, y) in enumerate(whole):
            assert torch.equal(torch.cat([p[step][0] for p in parts]), x)  # augmentation included
            assert torch.equal(torch.cat([p[step][1] for p in parts]), y)
        every = torch.cat([y for e in evals for _, y in e])
        assert torch.equal(every, torch.cat([y for _, y in whole_eval]))  # each image once, in order
    as_rank(monkeypatch, 0, 4)
    with pytest.raises(DartsNasError, match="--batch-size 6 is the global batch, which 4 ranks cannot share"):
        DeviceLoader(ds, torch.arange(30), sharded=True, **kw)


def test_evaluation_parts_cover_every_example_once(monkeypatch):
    for n in (1, 2, 3, 7):
        for total in (0, 1, 5, 11, 64):
            covered = []
            for r in range(n):
                as_rank(monkeypatch, r, n)
                lo, hi = distributed.part_range(total)
                covered += range(lo, hi)
            assert covered == list(range(total))


def test_streaming_loader_shards_every_global_batch(monkeypatch, tmp_path):
    from PIL import Image

    from darts_nas.data.stream import StreamingLoader

    files = []
    for i in range(8):
        files.append(tmp_path / f"{i}.png")
        Image.new("RGB", (12, 12), (i * 20, 0, 0)).save(files[-1])
    labels = list(range(8))  # one label per image: the labels say which images a batch holds
    kw = dict(batch_size=4, device="cpu", image_size=8, workers=0)
    whole = [y for _, y in StreamingLoader(files, labels, **kw).epoch(torch.Generator().manual_seed(1))]
    parts = []
    for r in range(2):
        as_rank(monkeypatch, r, 2)
        loader = StreamingLoader(files, labels, sharded=True, **kw)
        parts.append([y for _, y in loader.epoch(torch.Generator().manual_seed(1))])
    assert [torch.cat([parts[0][s], parts[1][s]]).tolist() for s in range(2)] == [y.tolist() for y in whole]


def test_collectives_are_no_ops_in_one_process():
    assert not distributed.active() and distributed.world_size() == 1 and distributed.is_main()
    g = [torch.ones(2), None]
    assert distributed.average(g) is not g and distributed.average(g)[0] is g[0]
    t = torch.arange(4)
    assert distributed.shard(t) is t and distributed.all_sum(t) is t
    distributed.check_replicas({"x": [t]}, 1)
    distributed.check_same({"a": 1}, "settings")


def test_sync_bn_needs_cuda_ranks(monkeypatch):
    from darts_nas.run.train import sync_batch_norm

    model = torch.nn.Sequential(torch.nn.BatchNorm2d(3))
    assert sync_batch_norm(model, torch.device("cpu")) is model  # one process: BatchNorm sees the whole batch
    monkeypatch.setattr(distributed, "active", lambda: True)
    with pytest.raises(DartsNasError, match="--sync-bn needs CUDA ranks"):
        sync_batch_norm(model, torch.device("cpu"))


def test_a_nan_on_one_rank_stops_every_rank_with_one_message_and_keeps_the_checkpoint(two_ranks):
    # Rank 1's loss turns NaN in the second epoch; rank 0's own shard is fine (the patch "nan-on-rank-1" of
    # tests/dist_worker.py). The losses the loop reads are averaged over the ranks, so both stop at the same step.
    proc = two_ranks.command("nan")
    assert proc.returncode != 0
    errors = our_errors(proc.stderr)
    assert len(errors) == 1 and "the training loss became nan in epoch 2 (by step 1)" in errors[0], proc.stderr[-2000:]
    assert "the last good checkpoint (epoch 1) is" in errors[0]
    assert load_checkpoint(two_ranks.out / "n")["epoch"] == 1
