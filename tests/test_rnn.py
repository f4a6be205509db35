"""The recurrent space: corpus and BPTT batching, the cells against the equations, the derivation, the
second-order hypergradient against torch.func, the language-model runs (resume, averaged SGD, NaN) and the
command line's messages."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from darts_nas.cli import main
from darts_nas.config import preset_config, train_preset_config
from darts_nas.data.text import (Vocabulary, batchify, bptt_windows, load_corpus, sequence_length, window,
                                 write_tiny_corpus)
from darts_nas.errors import DartsNasError
from darts_nas.nets.rnn import RNNModel, locked_dropout, parameter_count
from darts_nas.spaces.rnn_cell import SearchRecurrentCell
from darts_nas.genotypes.rnn import (DARTS_V1, DARTS_V2, ENAS, RNN_PRIMITIVES, RecurrentGenotype, derive_recurrent,
                                    load_recurrent_genotype)
from darts_nas.run.common import NonFiniteLoss
from darts_nas.run import resume_search, start_search
from darts_nas.run import start_training as start_lm_training
from darts_nas.run.lm import LMTrainRun, averaged_weights, stream_loss
from darts_nas.spaces.darts_rnn import DartsRNNSearchModel
from darts_nas.strategies import architecture_gradient

ACT = {"tanh": torch.tanh, "relu": torch.relu, "sigmoid": torch.sigmoid, "identity": lambda h: h}


from conftest import quiet  # noqa: E402  (and the session fixture corpus_dir: 240/40/40 lines of 20 words)


# ----------------------------------------------------------------------------------------------------------------
# corpus and batching
# ----------------------------------------------------------------------------------------------------------------
def test_corpus_vocabulary_in_order_of_appearance_with_one_eos_per_line(tmp_path):
    (tmp_path / "ptb.train.txt").write_text("a b c\n\nb d\n")
    (tmp_path / "ptb.valid.txt").write_text("d a\n")
    (tmp_path / "ptb.test.txt").write_text("c\n")
    c = load_corpus("ptb", tmp_path)
    assert c.vocab.words == ["a", "b", "c", "<eos>", "d"]
    assert c.train.tolist() == [0, 1, 2, 3, 3, 1, 4, 3]
    assert c.valid.tolist() == [4, 0, 3] and c.test.tolist() == [2, 3]
    # Given a vocabulary, the training file is not read at all.
    (tmp_path / "ptb.train.txt").write_text("")
    assert load_corpus("ptb", tmp_path, vocab=c.vocab).valid.tolist() == [4, 0, 3]


def test_corpus_errors_name_the_problem(tmp_path):
    with pytest.raises(DartsNasError, match="missing ptb.train.txt, ptb.valid.txt, ptb.test.txt"):
        load_corpus("ptb", tmp_path)
    write_tiny_corpus(tmp_path, "ptb")
    (tmp_path / "ptb.test.txt").write_text("w1 w2\nw3 zebra\n")
    with pytest.raises(DartsNasError, match=r"ptb.test.txt, line 2: the word 'zebra' is not in the vocabulary"):
        load_corpus("ptb", tmp_path)
    (tmp_path / "ptb.valid.txt").write_text("")
    with pytest.raises(DartsNasError, match="empty"):
        load_corpus("ptb", tmp_path)


def test_batchify_cuts_contiguous_columns():
    tokens = torch.arange(23)
    b = batchify(tokens, 4)
    assert b.shape == (5, 4)
    assert b[:, 1].tolist() == [5, 6, 7, 8, 9]  # column b holds tokens b*rows .. (b+1)*rows - 1
    with pytest.raises(DartsNasError, match="fewer than 2 rows"):
        batchify(torch.arange(5), 4)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bptt_windows_cover_every_token_once_per_epoch(seed):
    rows, batch = 997, 3
    source = torch.arange(rows * batch).view(batch, rows).t()  # every token distinct
    g = torch.Generator().manual_seed(seed)
    windows = bptt_windows(rows, 35, 20, g)
    inputs, targets = [], []
    for start, n in windows:
        x, y = window(source, start, n)
        assert x.shape == y.shape == (n, batch) and 1 <= n <= 55
        inputs.append(x.flatten())
        targets.append(y.flatten())
    targets = torch.cat(targets)
    # Every token but the first of each column is a target exactly once; every token but the last an input once.
    assert sorted(targets.tolist()) == sorted(source[1:].flatten().tolist())
    assert sorted(torch.cat(inputs).tolist()) == sorted(source[:-1].flatten().tolist())
    assert all(n >= 5 for _, n in windows[:-1])  # only the last window is cut short
    assert len({n for _, n in windows}) > 5  # lengths vary


def test_sequence_length_follows_the_paper_rule():
    g = torch.Generator().manual_seed(0)
    lengths = torch.tensor([sequence_length(35, 20, g) for _ in range(4000)], dtype=torch.float64)
    assert lengths.min() >= 5 and lengths.max() <= 55
    half = (lengths < 25).double().mean()  # the bptt/2 draws (17.5 +- 5) sit below 25, the others almost never
    assert 0.03 < half < 0.08
    full = lengths[lengths >= 25]
    assert abs(full.mean() - 34.5) < 0.5  # int() truncation of N(35, 5)


# ----------------------------------------------------------------------------------------------------------------
# cells against the equations (arXiv:1806.09055, section 2.1), float64, no dropout
# ----------------------------------------------------------------------------------------------------------------
def _node0(cell, x, h):
    c0, h0 = (torch.cat([x, h], -1) @ cell.W0).split(cell.nhid, -1)
    return h + torch.sigmoid(c0) * (torch.tanh(h0) - h)


def _highway(cell, i, s_prev, op):
    c, h = (s_prev @ cell.Ws[i]).split(cell.nhid, -1)
    return s_prev + torch.sigmoid(c) * (ACT[op](h) - s_prev)


def test_evaluation_cell_is_the_equations_step_by_step():
    torch.manual_seed(0)
    for genotype in (DARTS_V2, ENAS):
        model = RNNModel(genotype, vocab_size=11, units=6).double().eval()
        cell = model.cell
        x = torch.randn(5, 3, 6, dtype=torch.float64)
        h = torch.randn(3, 6, dtype=torch.float64)
        out, last = cell(x, h)
        expected = []
        for t in range(5):
            states = [_node0(cell, x[t], h)]
            for i, (op, j) in enumerate(genotype.recurrent):
                states.append(_highway(cell, i, states[j], op))
            h = sum(states[k] for k in genotype.concat) / len(genotype.concat)
            expected.append(h)
        torch.testing.assert_close(out, torch.stack(expected), rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(last, h, rtol=1e-12, atol=1e-12)


def _bn(s):
    mean = s.mean(0, keepdim=True)
    var = ((s - mean) ** 2).mean(0, keepdim=True)
    return (s - mean) / torch.sqrt(var + 1e-5)


def test_search_cell_is_the_mixture_of_the_equations_loop_by_loop():
    torch.manual_seed(1)
    steps = 4
    cell = SearchRecurrentCell(6, 6, steps, dropout_x=0.0, dropout_h=0.0).double()
    weights = torch.softmax(torch.randn(steps * (steps + 1) // 2, 5, dtype=torch.float64), -1)
    x = torch.randn(4, 5, 6, dtype=torch.float64)
    h = torch.randn(5, 6, dtype=torch.float64)
    out, last = cell(x, h, weights)
    expected = []
    for t in range(4):
        states = [_bn(_node0(cell, x[t], h))]
        edge = 0
        for i in range(steps):
            s = torch.zeros_like(h)
            for j in range(i + 1):
                for k, op in enumerate(RNN_PRIMITIVES):
                    if op != "none":
                        s = s + weights[edge, k] * _highway(cell, i, states[j], op)
                edge += 1
            states.append(_bn(s))
        h = sum(states[1:]) / steps
        expected.append(h)
    torch.testing.assert_close(out, torch.stack(expected), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(last, h, rtol=1e-10, atol=1e-10)


def test_locked_dropout_keeps_one_mask_across_time():
    x = torch.ones(7, 4, 50)
    y = locked_dropout(x, 0.5, training=True)
    assert torch.equal(y, y[:1].expand_as(y))  # the same at every step
    assert set(y.unique().tolist()) <= {0.0, 2.0}
    assert torch.equal(locked_dropout(x, 0.5, training=False), x)


def test_tied_decoder_and_the_papers_parameter_counts():
    model = RNNModel(DARTS_V2, vocab_size=10000, units=850)
    assert model.decoder.weight is model.encoder.weight
    V, H = 10000, 850
    assert parameter_count(model) == V * H + V + (2 * H) * (2 * H) + 8 * H * (2 * H) == 22_960_000  # "23M"
    V, H = 33278, 700
    wt2 = RNNModel(DARTS_V2, vocab_size=V, units=H)
    assert parameter_count(wt2) == V * H + V + (2 * H) * (2 * H) + 8 * H * (2 * H)
    assert round(parameter_count(wt2) / 1e6) == 33


# ----------------------------------------------------------------------------------------------------------------
# genotypes and derivation
# ----------------------------------------------------------------------------------------------------------------
def test_recurrent_genotype_text_round_trip_and_errors():
    for g in (DARTS_V1, DARTS_V2, ENAS):
        assert RecurrentGenotype.from_text(g.to_text()) == g
        assert RecurrentGenotype.from_dict(json.loads(json.dumps(g.to_dict()))) == g
    assert load_recurrent_genotype("darts-v2") == DARTS_V2
    assert DARTS_V2.to_text().startswith("Genotype(recurrent=[('sigmoid', 0), ('relu', 1)")
    with pytest.raises(DartsNasError, match="unknown recurrent op 'gelu'"):
        RecurrentGenotype.from_text("Genotype(recurrent=[('gelu', 0)], concat=[1])")
    with pytest.raises(DartsNasError, match=r"node 2 can read states 0..1, got input 2"):
        RecurrentGenotype([("tanh", 0), ("relu", 2)], [1, 2])
    with pytest.raises(DartsNasError, match="CNN genotype"):
        load_recurrent_genotype("Genotype(normal=[], normal_concat=[], reduce=[], reduce_concat=[])")
    with pytest.raises(DartsNasError, match="__import__"):
        load_recurrent_genotype("Genotype(recurrent=__import__('os').system('true'), concat=[1])")


def test_derivation_keeps_the_strongest_non_none_predecessor_per_node():
    steps = 3
    w = torch.full((6, 5), 0.1)
    w[0] = torch.tensor([0.9, 0.0, 0.05, 0.05, 0.0])  # node 1: none strongest -> ignored, relu/sigmoid tie -> relu
    w[1, 2], w[2, 4] = 0.3, 0.5  # node 2: input 1 (identity 0.5) beats input 0 (relu 0.3)
    w[3:6] = 0.0
    w[4, 3] = 0.2  # node 3: input 1 sigmoid
    w[5, 0] = 0.9  # none on input 2 is ignored
    g = derive_recurrent(w, steps=steps)
    assert g.recurrent == (("relu", 0), ("identity", 1), ("sigmoid", 1))
    assert g.concat == (1, 2, 3)


# ----------------------------------------------------------------------------------------------------------------
# the second-order hypergradient with the recurrent model: exact product vs torch.func in float64
# ----------------------------------------------------------------------------------------------------------------
def _tiny_model():
    torch.manual_seed(3)
    model = DartsRNNSearchModel(vocab_size=9, units=5, steps=3, dropout=0.0, dropout_h=0.0, dropout_x=0.0,
                                dropout_i=0.0, tar=0.0).double()
    with torch.no_grad():
        model.alphas["recurrent"].normal_()
    g = torch.Generator().manual_seed(4)

    def batch(T):
        t = torch.randint(0, 9, (T + 1, 4), generator=g)
        return t[:-1], t[1:], torch.randn(4, 5, generator=g, dtype=torch.float64)

    return model, batch(6), batch(5)


@pytest.mark.parametrize("clip", [None, 0.05])
def test_second_order_gradient_with_hidden_state_and_virtual_clip_matches_torch_func(clip):
    model, train, val = _tiny_model()
    eta, wd = 0.7, 1e-2
    grads, val_hidden = architecture_gradient(model, train, val, order=2, eta=eta, weight_decay=wd, hvp="exact",
                                              virtual_clip=clip, with_output=True)

    names = list(model.named_weight_parameters())
    w0 = {n: p.detach() for n, p in model.named_weight_parameters().items()}
    a0 = model.alphas["recurrent"].detach()

    def loss(w, a, batch):
        x, y, h = batch
        logits, last, _, _ = functional_call(model, {**w, "alphas.recurrent": a}, (x, h))
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1)), last

    g_w = torch.func.grad(lambda w: loss(w, a0, train)[0])(w0)
    norm = torch.sqrt(sum((g * g).sum() for g in g_w.values()))
    k = 1.0 if clip is None else min(1.0, clip / (float(norm) + 1e-6))
    if clip is not None:
        assert k < 1.0  # the clip is active in this test

    def unrolled(a):
        g = torch.func.grad(lambda w: loss(w, a, train)[0])(w0)
        return {n: w0[n] - eta * (k * g[n] + wd * w0[n]) for n in names}

    expected = torch.func.grad(lambda a: loss(unrolled(a), a, val)[0])(a0)
    torch.testing.assert_close(grads[0], expected, rtol=1e-8, atol=1e-10)
    # The hidden state the validation stream carries on is the forward at w'.
    torch.testing.assert_close(val_hidden, loss(unrolled(a0), a0, val)[1], rtol=1e-10, atol=1e-12)


# ----------------------------------------------------------------------------------------------------------------
# runs
# ----------------------------------------------------------------------------------------------------------------
def search_config(corpus_dir, **kw):
    values = dict(data=str(corpus_dir), units=8, nodes=3, batch_size=4, bptt=8, max_seq_len_delta=4, epochs=2,
                  progress=False, device="cpu", limit=1200, log_every=5)
    return preset_config("darts-ptb", **{**values, **kw})


def test_search_resume_replays_an_uninterrupted_run(tmp_path, corpus_dir):
    straight = start_search(search_config(corpus_dir), tmp_path / "a", echo=quiet)
    straight.run()
    part = start_search(search_config(corpus_dir), tmp_path / "b", echo=quiet)
    part.run(stop_after=1)
    resumed = resume_search(tmp_path / "b", echo=quiet)
    assert resumed.epoch == 1
    resumed.run()
    for (n, a), (_, b) in zip(straight.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(a, b), n
    genotype = json.loads((tmp_path / "b" / "genotype.json").read_text())
    assert genotype["space"] == "darts-rnn" and len(genotype["recurrent"]) == 3
    history = [json.loads(line) for line in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history] == [1, 2] and all(h["val_ppl"] > 1 for h in history)


def test_second_order_search_runs_and_derive_reads_it(tmp_path, corpus_dir, capsys):
    run = start_search(search_config(corpus_dir, order=2, hvp="finite-difference", epochs=1), tmp_path / "s",
                       echo=quiet)
    result = run.run()
    assert result.finished and torch.isfinite(run.model.alphas["recurrent"]).all()
    assert main(["derive", str(tmp_path / "s"), "--alphas"]) == 0
    out = capsys.readouterr().out
    assert "Genotype(recurrent=" in out and "node 3 <- 2:" in out


def train_config(corpus_dir, **kw):
    values = dict(data=str(corpus_dir), units=8, batch_size=4, bptt=8, max_seq_len_delta=4, epochs=4,
                  eval_batch_size=4, test_batch_size=2, progress=False, device="cpu", log_every=5, nonmono=1)
    return train_preset_config("darts-ptb-eval", **{**values, **kw})


def scripted_validation(monkeypatch, losses):
    """Validation losses in a set order (the averaged-SGD trigger depends on them), then the real evaluation."""
    real = LMTrainRun.evaluate
    calls = {"n": 0}

    def evaluate(self, source):
        value = real(self, source)
        if source is self.val_data and calls["n"] < len(losses):
            value = losses[calls["n"]]
            calls["n"] += 1
        return value

    monkeypatch.setattr(LMTrainRun, "evaluate", evaluate)


def test_lm_training_switches_to_averaged_sgd_and_resumes_exactly(tmp_path, corpus_dir, monkeypatch):
    # Epoch 3's loss is above the best before the last epoch (nonmono 1): averaged SGD from epoch 4 on.
    scripted_validation(monkeypatch, [4.0, 5.0, 4.5, 4.2] * 2)
    straight = start_lm_training(train_config(corpus_dir), tmp_path / "a", echo=quiet)
    result = straight.run()
    assert [h["optimizer"] for h in result.history] == ["sgd", "sgd", "sgd", "asgd"]
    assert result.history[2].get("switched_to_asgd")
    assert result.final["test_ppl"] == pytest.approx(math.exp(result.final["test_loss"]))

    from darts_nas.run import resume_training as _resume_training
    part = start_lm_training(train_config(corpus_dir), tmp_path / "b", echo=quiet)
    part.run(stop_after=3)
    resumed = _resume_training(tmp_path / "b", echo=quiet)
    assert isinstance(resumed.optimizer, torch.optim.ASGD)
    resumed.run()
    for (n, a), (_, b) in zip(straight.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(a, b), n
    saved = torch.load(tmp_path / "b" / "last.pt", weights_only=True)
    with averaged_weights(resumed.model, resumed.optimizer):  # last.pt holds the averaged weights
        assert all(torch.equal(saved["model"][k], v) for k, v in resumed.model.state_dict().items())


def test_averaged_weights_are_the_mean_of_the_iterates():
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.ASGD(model.parameters(), lr=0.1, t0=0, lambd=0.0)
    snapshots = []
    for _ in range(5):
        opt.zero_grad()
        model(torch.randn(4, 3)).pow(2).sum().backward()
        opt.step()
        snapshots.append([p.detach().clone() for p in model.parameters()])
    current = [p.detach().clone() for p in model.parameters()]
    with averaged_weights(model, opt):
        # PyTorch's ASGD with t0=0 (what the AWD-LSTM and DARTS code use) averages the iterates from the second on.
        for p, *seq in zip(model.parameters(), *snapshots[1:]):
            torch.testing.assert_close(p, torch.stack(seq).mean(0))
    assert all(torch.equal(p, c) for p, c in zip(model.parameters(), current))


def test_stream_loss_equals_one_pass_over_the_whole_stream():
    torch.manual_seed(0)
    model = RNNModel(DARTS_V1, vocab_size=13, units=6).double().eval()
    source = batchify(torch.randint(0, 13, (300,)), 3)
    h0 = torch.zeros(3, 6, dtype=torch.float64)

    def lm_loss(batch):
        x, y, h = batch
        logits, last, _, _ = model(x, h)
        return F.cross_entropy(logits.reshape(-1, 13), y.reshape(-1)), last

    got = stream_loss(lm_loss, source, 7, h0)
    with torch.no_grad():
        logits, _, _, _ = model(source[:-1], h0)
        expected = F.cross_entropy(logits.reshape(-1, 13), source[1:].reshape(-1))
    assert got == pytest.approx(float(expected), rel=1e-12)


def test_lm_nan_stops_and_keeps_the_last_good_checkpoint(tmp_path, corpus_dir, monkeypatch):
    import darts_nas.run.lm as lm
    run = start_lm_training(train_config(corpus_dir, epochs=3), tmp_path / "run", echo=quiet)
    real, calls = lm.lm_cross_entropy, {"n": 0}

    def poisoned(logits, targets):
        calls["n"] += 1
        loss = real(logits, targets)
        return loss * float("nan") if run.epoch >= 1 and run.model.training else loss

    monkeypatch.setattr(lm, "lm_cross_entropy", poisoned)
    with pytest.raises(NonFiniteLoss, match=r"nan in epoch 2.*last good checkpoint \(epoch 1\)"):
        run.run()
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert state["epoch"] == 1 and all(torch.isfinite(v).all() for v in state["model"].values())


# ----------------------------------------------------------------------------------------------------------------
# the command line
# ----------------------------------------------------------------------------------------------------------------
def test_cli_language_model_train_evaluate_and_messages(tmp_path, corpus_dir, capsys):
    out = tmp_path / "lm"
    args = ["train", "--preset", "darts-ptb-eval", "--data", str(corpus_dir), "--units", "8", "--batch-size", "4",
            "--epochs", "1", "--bptt", "8", "--eval-batch-size", "4", "--test-batch-size", "4", "--no-progress",
            "--out", str(out)]
    assert main(args) == 0
    assert "test perplexity" in capsys.readouterr().out
    assert main(["evaluate", str(out), "--json"]) == 0
    r = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert r["valid_ppl"] == pytest.approx(math.exp(r["valid_loss"]))

    # A word outside the model's vocabulary at evaluation: one line, status 2.
    other = write_tiny_corpus(tmp_path / "other", "ptb", lines=(30, 5, 5), words=40)
    assert main(["evaluate", str(out), "--data", str(other)]) == 2
    assert "is not in the vocabulary" in capsys.readouterr().err
    # A missing corpus file, an unknown recurrent op, a CNN genotype for a language model.
    assert main(["train", "--preset", "darts-ptb-eval", "--data", str(tmp_path / "none"), "--out",
                 str(tmp_path / "x")]) == 2
    assert "no such directory" in capsys.readouterr().err
    assert main(["train", "--preset", "darts-ptb-eval", "--data", str(corpus_dir), "--genotype",
                 "Genotype(recurrent=[('swish', 0)], concat=[1])", "--out", str(tmp_path / "y")]) == 2
    assert "unknown recurrent op 'swish'" in capsys.readouterr().err
    assert main(["search", "--preset", "darts-ptb", "--data", str(corpus_dir), "--space", "darts-cnn"]) == 2
    assert "text corpus" in capsys.readouterr().err
    assert main(["info", "DARTS_V2", "--dataset", "ptb", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["params"] == 22_960_000
    assert main(["genotypes", "DARTS_V2", "--recurrent"]) == 0 and main(["genotypes", "ENAS"]) == 0
    listing = capsys.readouterr().out
    assert DARTS_V2.to_text() in listing and ENAS.to_text() in listing


def test_vocabulary_equality():
    assert Vocabulary(["a", "b"]) == Vocabulary(["a", "b"]) and Vocabulary(["a"]) != Vocabulary(["b"])


# ----------------------------------------------------------------------------------------------------------------
# the DARTS authors' recurrent hypergradient (--hypergradient authors) against a re-computation done their way
# ----------------------------------------------------------------------------------------------------------------
def _clipped(grads, clip):
    """The authors' clip: scaled by clip / (norm + 1e-6) when that is below 1; returns (grads, that coefficient)."""
    norm = torch.sqrt(sum((g * g).sum() for g in grads))
    coef = clip / (norm + 1e-6)
    return ([g * coef for g in grads] if coef < 1 else list(grads)), coef


def _unrolled_copy_their_way(model, train, eta, wd, clip):
    """Gradients of the parameters (the tied one listed once), clipped, the moved values loaded into a copy of the
    state dict (in which the tied decoder entry keeps the old embedding). Returns (the copy, the clip coef)."""
    import copy

    params = list(model.net.parameters())
    loss, _ = model.loss(train)
    grads, coef = _clipped(torch.autograd.grad(loss, params), clip)
    moved = [p.detach() - eta * (g + wd * p.detach()) for p, g in zip(params, grads)]
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state.update({f"net.{n}": m for (n, _), m in zip(model.net.named_parameters(), moved)})
    unrolled = copy.deepcopy(model)
    unrolled.load_state_dict(state)             # encoder.weight, then the stale decoder.weight into the same tensor
    return unrolled, coef


def _central_difference_in_place(model, vector, train, r):
    """(dL_train/dalpha at w + R v - the same at w - R v) / 2R, R = r / ||v||, moving `model`'s parameters in place
    (and back) as the authors do; returns (the differences, R)."""
    params, alphas = list(model.net.parameters()), model.arch_parameters()
    R = r / torch.sqrt(sum((v * v).sum() for v in vector))
    with torch.no_grad():
        for p, v in zip(params, vector):
            p.add_(R * v)
    grads_p = torch.autograd.grad(model.loss(train)[0], alphas)
    with torch.no_grad():
        for p, v in zip(params, vector):
            p.sub_(2 * R * v)
    grads_n = torch.autograd.grad(model.loss(train)[0], alphas)
    with torch.no_grad():
        for p, v in zip(params, vector):
            p.add_(R * v)
    return [a - b for a, b in zip(grads_p, grads_n)], R


def _authors_way(model, train, val, eta, wd, clip, r=0.01):
    """The authors' June 2018 procedure on module copies: the unrolled copy, the validation gradient clipped plus
    weight decay, and the central difference taken by moving the unrolled copy's parameters in place."""
    unrolled, _ = _unrolled_copy_their_way(model, train, eta, wd, clip)
    loss, _ = unrolled.loss(val)
    alphas = unrolled.arch_parameters()
    direct = torch.autograd.grad(loss, alphas, retain_graph=True)
    uparams = list(unrolled.net.parameters())
    dtheta, _ = _clipped(torch.autograd.grad(loss, uparams), clip)
    vector = [d + wd * p.detach() for d, p in zip(dtheta, uparams)]
    diffs, R = _central_difference_in_place(unrolled, vector, train, r)
    return [d - eta * x / (2 * R + 1e-10) for d, x in zip(direct, diffs)]


def _authors_final_way(model, train, val, eta, wd, clip, r=0.01):
    """The authors' final procedure (since their 2018-08-03 change) on module copies: the unrolled copy, the
    validation gradient clipped (no weight decay), the central difference at the current weights w +- R v (a copy
    of the model moved in place), subtracted as eta * coef * Hv with the training gradient's coef unclamped."""
    import copy

    unrolled, coef = _unrolled_copy_their_way(model, train, eta, wd, clip)
    loss, _ = unrolled.loss(val)
    alphas = unrolled.arch_parameters()
    direct = torch.autograd.grad(loss, alphas, retain_graph=True)
    vector, _ = _clipped(torch.autograd.grad(loss, list(unrolled.net.parameters())), clip)
    diffs, R = _central_difference_in_place(copy.deepcopy(model), vector, train, r)
    return [d - eta * coef * x / (2 * R) for d, x in zip(direct, diffs)], coef


@pytest.mark.parametrize("clip", [0.05, 100.0])
def test_the_authors_hypergradient_equals_their_computation_redone(clip):
    from darts_nas.strategies.bilevel import authors_2018_06_architecture_gradient, tied_weight_names

    model, train, val = _tiny_model()
    assert tied_weight_names(model) == {"net.encoder.weight"}
    eta, wd = 0.7, 1e-2
    ours, _ = authors_2018_06_architecture_gradient(model, train, val, eta=eta, weight_decay=wd, clip=clip)
    theirs = _authors_way(model, train, val, eta, wd, clip)
    torch.testing.assert_close(ours[0], theirs[0], rtol=1e-7, atol=1e-10)
    # and it is not the derivative of the unrolled objective (the default)
    exact = architecture_gradient(model, train, val, order=2, eta=eta, weight_decay=wd, hvp="exact",
                                  virtual_clip=clip)
    assert (ours[0] - exact[0]).norm() > 0.05 * exact[0].norm()


@pytest.mark.parametrize("clip", [0.05, 100.0])  # 100: ||g|| < clip, the coefficient above 1 scales Hv up
def test_the_authors_final_hypergradient_equals_their_computation_redone(clip):
    from darts_nas.strategies.bilevel import (authors_2018_06_architecture_gradient,
                                              authors_architecture_gradient)

    model, train, val = _tiny_model()
    before = [p.detach().clone() for p in model.parameters()]
    eta, wd = 0.7, 1e-2
    ours, _ = authors_architecture_gradient(model, train, val, eta=eta, weight_decay=wd, clip=clip)
    theirs, coef = _authors_final_way(model, train, val, eta, wd, clip)
    assert (coef > 1) == (clip == 100.0)
    torch.testing.assert_close(ours[0], theirs[0], rtol=1e-7, atol=1e-10)
    assert all(torch.equal(b, p) for b, p in zip(before, model.parameters()))  # the model is left as it was
    # it is neither the June 2018 release's gradient nor the derivative of the unrolled objective
    june, _ = authors_2018_06_architecture_gradient(model, train, val, eta=eta, weight_decay=wd, clip=clip)
    exact = architecture_gradient(model, train, val, order=2, eta=eta, weight_decay=wd, hvp="exact",
                                  virtual_clip=clip)
    assert (ours[0] - june[0]).norm() > 0.05 * june[0].norm()
    assert (ours[0] - exact[0]).norm() > 0.05 * exact[0].norm()


def test_the_authors_hypergradient_is_a_checked_option(tmp_path, corpus_dir):
    from darts_nas.config import SearchConfig

    with pytest.raises(DartsNasError, match="--hypergradient authors is the DARTS authors' recurrent second order"):
        SearchConfig(space="darts-rnn", dataset="ptb", order=1, hypergradient="authors").validate()
    config = preset_config(
        "darts-ptb-2nd-authors", data=str(corpus_dir), units=8, nodes=3, batch_size=4, bptt=8, max_seq_len_delta=4,
        epochs=1, progress=False, device="cpu", limit=600, log_every=5)
    run = start_search(config, tmp_path / "a", echo=quiet)
    assert "authors' recurrent hypergradient" in run.strategy.describe()
    run.run()
    assert (tmp_path / "a" / "genotype.json").is_file()
    # bench hypergradient compares the two at the run's checkpoint, one row per window
    assert main(["bench", "hypergradient", "--run", str(tmp_path / "a"), "--batches", "2",
                 "--json", str(tmp_path / "hg.json")]) == 0
    rows = json.loads((tmp_path / "hg.json").read_text())
    assert [r["batch"] for r in rows] == [0, 1] and rows[0]["epoch"] == 1
    assert all(-1 <= r["cosine"] <= 1 and r["exact_norm"] > 0 and r["authors_norm"] > 0 for r in rows)
    assert all(-1 <= r["cosine_2018_06"] <= 1 and r["authors_2018_06_norm"] > 0 for r in rows)
    assert main(["bench", "hypergradient"]) == 2  # no run: one line, exit 2


def test_the_authors_june_2018_hypergradient_is_a_checked_option(tmp_path, corpus_dir):
    from darts_nas.config import SearchConfig

    with pytest.raises(DartsNasError, match="--hypergradient authors-2018-06 is the DARTS authors' recurrent"):
        SearchConfig(space="darts-rnn", dataset="ptb", order=2, hypergradient="authors-2018-06").validate()
    config = preset_config(
        "darts-ptb-2nd-authors", data=str(corpus_dir), units=8, nodes=3, batch_size=4, bptt=8, max_seq_len_delta=4,
        epochs=1, progress=False, device="cpu", limit=600, log_every=5, hypergradient="authors-2018-06")
    run = start_search(config, tmp_path / "j", echo=quiet)
    assert "their June 2018 release" in run.strategy.describe()
    run.run()
    assert (tmp_path / "j" / "genotype.json").is_file()
