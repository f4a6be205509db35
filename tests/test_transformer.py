"""The reversible Transformer space (memory-efficient Transformer DARTS, arXiv:2105.14669): the multi-split
coupling and its inverse, the reconstructing backward against plain autograd in float64, the memory it saves,
derivation, the data, decoding, BLEU, and the commands end to end."""

from __future__ import annotations

import itertools
import json

import pytest
import torch
from torch import nn

from darts_nas.cli import main
from darts_nas.config import SearchConfig
from darts_nas.data.seq2seq import (BOS, EOS, DevicePairs, SentencePieceTokenizer, WordTokenizer, bucket_by_length,
                                    corpus_bleu, load_seq2seq, synthetic_pairs)
from darts_nas.errors import DartsNasError
from darts_nas.genotypes import TransformerArch, derive_transformer, load_genotype
from darts_nas.genotypes.transformer import SMALL_DECODER_OPS, SMALL_ENCODER_OPS
from darts_nas.nets.reversible import ReversibleBlock, ReversibleStack
from darts_nas.nets.transformer import (ReversibleTransformer, beam_decode, greedy_decode, seq2seq_loss,
                                        transformer_from_arch)
from darts_nas.run.checkpoint import load_checkpoint
from darts_nas.spaces import RevTransformerSearchModel
from darts_nas.strategies import strategy_from_config
from darts_nas.strategies.regularizers import ArchRegularizer


class Affine(nn.Module):
    """A small residual function with the signature of the Transformer's: tanh(W h + b) (+ dropout)."""

    def __init__(self, d, p=0.0):
        super().__init__()
        self.lin = nn.Linear(d, d)
        self.drop = nn.Dropout(p)

    def forward(self, h, side, w=None):
        return self.drop(torch.tanh(self.lin(h)))


def _batch(vocab=20, seed=0):
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(4, vocab, (3, 7), generator=g)
    src[0, 5:] = 0  # padding
    tgt = torch.randint(4, vocab, (3, 6), generator=g)
    tgt[1, 4:] = 0
    return src, tgt


# -- the coupling and its inverse ---------------------------------------------------------------------------
def test_two_splits_is_revnets_coupling():
    torch.manual_seed(0)
    block = ReversibleBlock([Affine(5), Affine(5)]).double()
    x1, x2 = torch.randn(2, 3, 5, dtype=torch.float64), torch.randn(2, 3, 5, dtype=torch.float64)
    y1, y2 = block([x1, x2], ())
    f, g = block.functions
    e1 = x1 + f(x2, ())
    e2 = x2 + g(e1, ())
    assert torch.allclose(y1, e1, atol=0, rtol=0) and torch.allclose(y2, e2, atol=1e-15)
    # n = 3: F_2 reads y_1 + x_3 (the parts already updated and the ones not yet)
    block3 = ReversibleBlock([Affine(5), Affine(5), Affine(5)]).double()
    x = [torch.randn(2, 3, 5, dtype=torch.float64) for _ in range(3)]
    y = block3(x, ())
    f1, f2, f3 = block3.functions
    z1 = x[0] + f1(x[1] + x[2], ())
    z2 = x[1] + f2(z1 + x[2], ())
    z3 = x[2] + f3(z1 + z2, ())
    for a, b in zip(y, (z1, z2, z3)):
        assert torch.allclose(a, b, atol=1e-14)


@pytest.mark.parametrize("n", [2, 3, 4])
def test_the_inverse_alone_recovers_the_inputs(n):
    torch.manual_seed(n)
    stack = ReversibleStack([ReversibleBlock([Affine(6, p=0.3) for _ in range(n)]) for _ in range(3)]).double()
    stack.train()
    x = [torch.randn(4, 5, 6, dtype=torch.float64) for _ in range(n)]
    # with dropout: each block's recorded seeds replay its masks in the inverse
    parts, seeds = list(x), []
    for block in stack.blocks:
        s = []
        parts = block(parts, (), None, s)
        seeds.append(s)
    back = parts
    with torch.no_grad():
        for block, s in zip(reversed(stack.blocks), reversed(seeds)):
            back = block.inverse(back, (), None, s)
    assert max(float((a - b).abs().max()) for a, b in zip(back, x)) < 1e-12
    # without dropout the stack's own inverse
    stack.eval()
    with torch.no_grad():
        y = stack(x, ())
    back = stack.inverse(y, ())
    assert max(float((a - b).abs().max()) for a, b in zip(back, x)) < 1e-12


# -- the reconstructing backward against plain autograd ------------------------------------------------------
@pytest.mark.parametrize("n", [2, 3, 4])
def test_reversible_gradients_equal_plain_autograd_in_float64(n):
    """Weights, op weights (alphas' gradient) and everything before and after the stacks (embedding, encoder
    memory): the same gradients as ordinary backpropagation through the same network."""
    torch.manual_seed(n)
    enc, dec = [[SMALL_ENCODER_OPS] * n] * 2, [[SMALL_DECODER_OPS] * n] * 2
    model = ReversibleTransformer(20, 16, enc, dec, dropout=0.0).double()
    src, tgt = _batch()
    we = torch.randn(2, n, len(SMALL_ENCODER_OPS), dtype=torch.float64, requires_grad=True)
    wd = torch.randn(2, n, len(SMALL_DECODER_OPS), dtype=torch.float64, requires_grad=True)
    grads = {}
    for rev in (True, False):
        model.set_reversible(rev)
        model.zero_grad()
        we.grad = wd.grad = None
        seq2seq_loss(model(src, tgt[:, :-1], we, wd), tgt[:, 1:]).backward()
        grads[rev] = [p.grad.clone() for p in model.parameters()] + [we.grad.clone(), wd.grad.clone()]
    assert all(g.abs().sum() > 0 for g in grads[False][-2:])
    worst = max(float((a - b).abs().max() / (b.abs().max() + 1e-30)) for a, b in zip(grads[True], grads[False]))
    assert worst < 1e-10, worst


def test_reversible_dropout_gradient_matches_central_differences():
    """With dropout on, the replayed masks make the reconstruction exact: the alphas' gradient equals a float64
    central difference of the same (reseeded) loss."""
    torch.manual_seed(0)
    model = RevTransformerSearchModel(20, d_model=16, layers=2, splits=3, bank="small", dropout=0.2).double()
    model.train()
    src, tgt = _batch()
    batch = (src, tgt[:, :-1], tgt[:, 1:])

    def loss():
        torch.manual_seed(123)
        return model.loss(batch)[0]

    model.zero_grad()
    loss().backward()
    alpha = model.alphas["decoder"]
    for idx in [(0, 2), (3, 8), (5, 6)]:
        h = 1e-6
        values = []
        for shift in (h, -2 * h):  # the forwards with gradients on: they run the reversible path
            with torch.no_grad():
                alpha[idx] += shift
            values.append(loss().item())
        with torch.no_grad():
            alpha[idx] += h
        up, down = values
        assert abs((up - down) / (2 * h) - alpha.grad[idx].item()) < 1e-7


def _saved_bytes(model, batch) -> int:
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    total, seen = 0, set()

    def pack(t):
        nonlocal total
        ptr = t.untyped_storage().data_ptr()
        if ptr not in params and ptr not in seen:
            seen.add(ptr)
            total += t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss, _ = model.loss(batch)
    loss.backward()
    return total


def test_saved_activations_stay_constant_in_depth_only_when_reversible():
    src, tgt = _batch()
    batch = (src, tgt[:, :-1], tgt[:, 1:])
    saved = {}
    for rev in (True, False):
        for depth in (1, 2, 4):
            torch.manual_seed(0)
            model = RevTransformerSearchModel(20, d_model=16, layers=depth, splits=2, bank="small", dropout=0.0,
                                              reversible=rev)
            saved[rev, depth] = _saved_bytes(model, batch)
    # Reversible: only the relaxation's softmax of the alphas grows (splits rows per block and stack, fp32); the
    # activations do not.
    alpha_rows = 4 * 2 * (len(SMALL_ENCODER_OPS) + len(SMALL_DECODER_OPS))
    assert saved[True, 2] - saved[True, 1] == alpha_rows and saved[True, 4] - saved[True, 2] == 2 * alpha_rows
    step1, step2 = saved[False, 2] - saved[False, 1], saved[False, 4] - saved[False, 2]
    assert step1 > 0 and step2 == 2 * step1  # linear: each block adds the same
    assert saved[False, 4] > 5 * saved[True, 4]


def test_functional_call_differentiates_at_the_given_weights():
    """The second-order hypergradient evaluates the model at w +- r v through functional_call: the reconstructing
    backward must use those weights, not the module's."""
    torch.manual_seed(0)
    model = RevTransformerSearchModel(20, d_model=16, layers=2, splits=2, bank="small", dropout=0.0).double()
    src, tgt = _batch()
    batch = (src, tgt[:, :-1], tgt[:, 1:])
    other = {k: p.detach() + 0.05 * torch.randn_like(p) for k, p in model.named_weight_parameters().items()}
    grads = {}
    for rev in (True, False):
        model.net.set_reversible(rev)
        loss, _ = model.loss(batch, other)
        grads[rev] = torch.autograd.grad(loss, model.arch_parameters())
    for a, b in zip(grads[True], grads[False]):
        assert torch.allclose(a, b, atol=1e-12)


@pytest.mark.parametrize("strategy,order", [("bilevel", 2), ("single-level", 1)])
def test_search_strategies_step_the_same_through_the_reconstruction(strategy, order):
    """Second order with the finite-difference Hessian-vector product, and single-level: one step of each moves
    the alphas and weights as through plain autograd."""
    src, tgt = _batch()
    train, val = (src, tgt[:, :-1], tgt[:, 1:]), (src.flip(0), tgt.flip(0)[:, :-1], tgt.flip(0)[:, 1:])
    config = SearchConfig(space="rev-transformer", dataset="copy", strategy=strategy, order=order,
                          hvp="finite-difference")
    out = {}
    for rev in (True, False):
        torch.manual_seed(0)
        model = RevTransformerSearchModel(20, d_model=16, layers=2, splits=2, bank="small", dropout=0.0,
                                          reversible=rev).double()
        w_opt = torch.optim.SGD(model.weight_parameters(), lr=0.1, momentum=0.9)
        a_opt = torch.optim.Adam(model.arch_parameters(), lr=0.01)
        s = strategy_from_config(config, ArchRegularizer())
        s.step(model, train, val if s.uses_val_batch else None, w_opt, a_opt, 0.1, 5.0, True)
        out[rev] = [p.detach().clone() for p in model.parameters()]
    for a, b in zip(out[True], out[False]):
        assert torch.allclose(a, b, atol=1e-10)


def test_exact_hessian_products_are_refused_with_the_reversible_stack():
    with pytest.raises(DartsNasError, match="finite-difference"):
        SearchConfig(space="rev-transformer", dataset="copy", order=2, hvp="exact").validate()
    SearchConfig(space="rev-transformer", dataset="copy", order=2, hvp="exact", reversible=False).validate()
    with pytest.raises(DartsNasError, match="sequence-to-sequence"):
        SearchConfig(space="rev-transformer", dataset="cifar10").validate()


# -- derivation and genotypes ---------------------------------------------------------------------------------
def test_derivation_takes_the_strongest_op_but_zero():
    enc = torch.zeros(4, len(SMALL_ENCODER_OPS))
    enc[0, 0] = 9  # zero is strongest: the next one counts
    enc[0, SMALL_ENCODER_OPS.index("glu")] = 5
    enc[1, SMALL_ENCODER_OPS.index("ffn")] = 1
    enc[2, SMALL_ENCODER_OPS.index("attn_4")] = 1
    enc[3, SMALL_ENCODER_OPS.index("identity")] = 1
    dec = torch.zeros(2, len(SMALL_DECODER_OPS))
    dec[0, SMALL_DECODER_OPS.index("enc_attn_4")] = 1
    dec[1, SMALL_DECODER_OPS.index("sep_conv_3")] = 1
    arch = derive_transformer(enc, dec, 2, SMALL_ENCODER_OPS, SMALL_DECODER_OPS)
    assert arch.encoder == (("glu", "ffn"), ("attn_4", "identity"))
    assert arch.decoder == (("enc_attn_4", "sep_conv_3"),)
    assert arch.parameter_free_ops() == 1
    assert load_genotype(arch.to_text()) == arch
    assert TransformerArch.from_dict(json.loads(json.dumps(arch.to_dict()))) == arch
    with pytest.raises(DartsNasError, match="not one of the encoder"):
        TransformerArch(2, [["enc_attn_4", "ffn"]], [["ffn", "ffn"]])
    with pytest.raises(DartsNasError, match="2 op names"):
        TransformerArch(2, [["ffn"]], [["ffn", "ffn"]])


def test_the_derived_network_computes_the_supernet_at_one_hot_weights():
    torch.manual_seed(0)
    model = RevTransformerSearchModel(20, d_model=16, layers=2, splits=2, bank="small", dropout=0.0).double()
    with torch.no_grad():
        for a in model.alphas.values():
            a.normal_()
    arch = model.genotype()
    net = transformer_from_arch(arch, 20, 16, dropout=0.0).double()
    # copy each chosen op's weights (and the norms, embedding) into the derived network
    sd = {}
    for key, value in model.net.state_dict().items():
        sd[key] = value
    mapped = {}
    for stack_name, blocks in (("encoder", arch.encoder), ("decoder", arch.decoder)):
        ops = model.enc_ops if stack_name == "encoder" else model.dec_ops
        for b, block in enumerate(blocks):
            for i, op in enumerate(block):
                prefix = f"{stack_name}.blocks.{b}.functions.{i}."
                k = ops.index(op)
                for key, value in sd.items():
                    if key.startswith(prefix + f"ops.{k}."):
                        mapped[prefix + "ops.0." + key[len(prefix + f'ops.{k}.'):]] = value
                    elif key.startswith(prefix + "norm."):
                        mapped[key] = value
    for key, value in sd.items():
        if ".blocks." not in key:
            mapped[key] = value
    net.load_state_dict(mapped)
    hard = model.derived_weights()
    src, tgt = _batch()
    with model.fixed_op_weights(hard):
        expected = model(src, tgt[:, :-1])
    assert torch.allclose(net(src, tgt[:, :-1]), expected, atol=1e-12)


# -- data, decoding, BLEU -------------------------------------------------------------------------------------
def test_synthetic_tasks_and_bleu():
    pairs = synthetic_pairs("reverse", 50, 2, 6, 5, seed=1)
    assert all(t.split() == s.split()[::-1] for s, t in pairs)
    assert all(2 <= len(s.split()) <= 6 for s, _ in pairs)
    pairs = synthetic_pairs("sort", 50, 2, 6, 5, seed=1)
    assert all(t.split() == sorted(s.split(), key=lambda w: int(w[1:])) for s, t in pairs)
    refs = ["the cat sat on the mat", "a b c d e"]
    assert corpus_bleu(refs, refs) == pytest.approx(100.0)
    assert corpus_bleu(["x y z", "q"], refs) < 5


def test_parallel_files_with_sentencepiece(tmp_path):
    words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"]
    g = torch.Generator().manual_seed(0)
    for split, n in (("train", 200), ("valid", 20), ("test", 20)):
        src, tgt = [], []
        for _ in range(n):
            idx = torch.randint(0, len(words), (5,), generator=g).tolist()
            src.append(" ".join(words[i] for i in idx))
            tgt.append(" ".join(words[i].upper() for i in idx))
        (tmp_path / f"{split}.src").write_text("\n".join(src) + "\n")
        (tmp_path / f"{split}.tgt").write_text("\n".join(tgt) + "\n")
    config = SearchConfig(space="rev-transformer", dataset="parallel", data=str(tmp_path), subword_vocab=40)
    corpus = load_seq2seq(config)
    tok = corpus.tokenizer
    assert isinstance(tok, SentencePieceTokenizer) and len(tok) == 40
    line = corpus.text["valid"][0][0]
    assert tok.decode(tok.encode(line)) == line
    again = SentencePieceTokenizer(bytes(tok.to_dict()["model"]))
    assert again.encode(line) == tok.encode(line)
    (tmp_path / "test.tgt").write_text("one line\n")
    with pytest.raises(DartsNasError, match="pair line by line"):
        load_seq2seq(config)


def test_beam_search_finds_the_enumerated_best_and_beam_one_is_greedy():
    torch.manual_seed(3)
    arch = TransformerArch(2, [["attn_4", "ffn"]], [["attn_4", "enc_attn_4"]])
    model = transformer_from_arch(arch, 7, 16, dropout=0.0).double().eval()
    with torch.no_grad():
        model.embed.weight.mul_(8)  # sharper distributions: the search matters
    src = torch.tensor([[4, 5, 6], [6, 4, 4]])
    L = 3
    assert torch.equal(beam_decode(model, src, BOS, EOS, L, beam=1, length_penalty=0.0),
                       greedy_decode(model, src, BOS, EOS, L))
    # Exhaustive: every sequence of up to L tokens (ending at EOS or at L), scored as the beam scores them.
    for b in range(2):
        best, best_score = None, -float("inf")
        for length in range(1, L + 1):
            for body in itertools.product(range(3, 7), repeat=length):
                seqs = [list(body[:-1]) + [EOS]] + ([list(body)] if length == L else [])
                for seq in seqs:
                    if any(t in (0, 1, 2) for t in seq[:-1]) or len(seq) > L:
                        continue
                    tgt = torch.tensor([[BOS] + seq])
                    with torch.no_grad():
                        logp = torch.log_softmax(model(src[b:b + 1], tgt)[0, :-1], -1)
                    score = float(logp[torch.arange(len(seq)), torch.tensor(seq)].sum())
                    if score > best_score:
                        best, best_score = seq, score
        out = beam_decode(model, src[b:b + 1], BOS, EOS, L, beam=64, length_penalty=0.0)[0].tolist()
        out = [t for t in out if t != 0]
        assert out == best


# -- the commands end to end -----------------------------------------------------------------------------------
_SMALL = ["--dataset", "copy", "--op-bank", "small", "--d-model", "16", "--blocks", "1", "--task-size", "128",
          "--max-length", "6", "--batch-size", "16", "--weight-optimizer", "adam", "--lr", "0.003",
          "--hessian-every", "0", "--no-progress"]


def test_search_resume_replays_and_train_evaluate(tmp_path, capsys):
    full, part = tmp_path / "full", tmp_path / "part"
    args = ["search", "--space", "rev-transformer", *_SMALL, "--epochs", "2", "--model-dropout", "0.1"]
    assert main([*args, "--out", str(full)]) == 0
    assert main([*args, "--out", str(part), "--stop-after", "1"]) == 0
    assert main(["search", "--resume", str(part)]) == 0
    a, b = load_checkpoint(full), load_checkpoint(part)
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    records = [json.loads(line) for line in (full / "metrics.jsonl").read_text().splitlines()]
    assert len(records) == 2 and "encoder" in records[0]["op_weights"] and "val_ppl" in records[0]
    arch = load_genotype(full)
    assert isinstance(arch, TransformerArch)
    run = tmp_path / "train"
    assert main(["train", "--genotype", str(full), "--dataset", "copy", "--d-model", "16", "--task-size", "128",
                 "--max-length", "6", "--batch-size", "16", "--epochs", "1", "--lr", "0.003", "--beam", "2",
                 "--no-progress", "--out", str(run)]) == 0
    results = json.loads((run / "results.json").read_text())
    assert {"test_bleu_greedy", "test_bleu_beam", "valid_bleu_greedy"} <= set(results)
    capsys.readouterr()
    assert main(["evaluate", str(run)]) == 0
    assert "test BLEU" in capsys.readouterr().out
    # training resumes bit for bit (dropout on)
    train = ["train", "--genotype", str(full), "--dataset", "copy", "--d-model", "16", "--task-size", "64",
             "--max-length", "5", "--batch-size", "16", "--epochs", "2", "--lr", "0.003", "--beam", "1",
             "--model-dropout", "0.1", "--no-progress"]
    assert main([*train, "--out", str(tmp_path / "t-full")]) == 0
    assert main([*train, "--out", str(tmp_path / "t-part"), "--stop-after", "1"]) == 0
    assert main(["train", "--resume", str(tmp_path / "t-part")]) == 0
    a, b = load_checkpoint(tmp_path / "t-full"), load_checkpoint(tmp_path / "t-part")
    assert a["kind"] == "darts-nas/train-transformer"
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k


def test_language_model_search_and_training_on_a_word_corpus(tmp_path):
    g = torch.Generator().manual_seed(0)
    words = [f"w{i}" for i in range(30)]
    for name, n in (("train.txt", 300), ("valid.txt", 60), ("test.txt", 60)):
        lines = [" ".join(words[i] for i in torch.randint(0, 30, (8,), generator=g).tolist()) for _ in range(n)]
        (tmp_path / name).write_text("\n".join(lines) + "\n")
    out = tmp_path / "search"
    assert main(["search", "--space", "rev-transformer-lm", "--dataset", "text", "--data", str(tmp_path),
                 "--op-bank", "small", "--d-model", "16", "--blocks", "2", "--batch-size", "8", "--bptt", "16",
                 "--epochs", "1", "--weight-optimizer", "adam", "--lr", "0.003", "--hessian-every", "1",
                 "--hessian-iters", "2", "--no-progress", "--out", str(out)]) == 0
    record = json.loads((out / "metrics.jsonl").read_text().splitlines()[0])
    assert "hessian_eigenvalue" in record and record["val_ppl"] > 1
    arch = load_genotype(out)
    assert arch.language_model and "enc_attn_4" not in str(arch)
    run = tmp_path / "train"
    assert main(["train", "--genotype", str(out), "--dataset", "text", "--data", str(tmp_path), "--d-model", "16",
                 "--batch-size", "8", "--bptt", "16", "--epochs", "1", "--lr", "0.003", "--no-progress",
                 "--out", str(run)]) == 0
    assert json.loads((run / "results.json").read_text())["test_ppl"] > 1


def test_a_copy_task_is_learned_to_near_perfect_bleu(tmp_path):
    run = tmp_path / "copy"
    assert main(["train", "--preset", "rev-transformer-copy-train", "--task-size", "2048", "--max-length", "8",
                 "--epochs", "6", "--lr", "5e-3", "--beam", "1", "--no-progress", "--out", str(run)]) == 0
    results = json.loads((run / "results.json").read_text())
    assert results["test_bleu_greedy"] > 90, results


def test_word_tokenizer_round_trip_and_unknowns():
    tok = WordTokenizer.train(["a b c", "c d"])
    assert tok.decode(tok.encode("a d b")) == "a d b"
    assert tok.decode(tok.encode("a zzz")) == "a <unk>"


# -- the device-side batches ----------------------------------------------------------------------------------
def _host_batches(pairs, batch_size, generator=None, drop_last=True):
    """The batches as they were built on the host: each batch's lists padded to its own longest sequence."""
    src, tgt = pairs
    order = torch.randperm(len(src), generator=generator).tolist() if generator is not None else \
        list(range(len(src)))
    stop = len(order) - len(order) % batch_size if drop_last else len(order)

    def pad(rows):
        out = torch.zeros(len(rows), max(1, max(len(r) for r in rows)), dtype=torch.long)
        for i, r in enumerate(rows):
            out[i, :len(r)] = torch.tensor(r, dtype=torch.long)
        return out

    out = []
    for k in range(0, stop, batch_size):
        s = [src[i] for i in order[k:k + batch_size]]
        t = [tgt[i] for i in order[k:k + batch_size]]
        out.append((pad(s), pad([[BOS] + y for y in t]), pad([y + [EOS] for y in t])))
    return out


@pytest.mark.parametrize("batch_size,drop_last,seed", [(4, True, 3), (5, False, 3), (7, True, None),
                                                        (40, False, None), (1, True, 0)])
def test_device_batches_are_the_host_built_ones(batch_size, drop_last, seed):
    g = torch.Generator().manual_seed(11)
    pairs = tuple([torch.randint(4, 30, (int(torch.randint(0, 9, (1,), generator=g)),), generator=g).tolist()
                   for _ in range(37)] for _ in range(2))  # empty sequences too
    gen = (lambda: torch.Generator().manual_seed(seed)) if seed is not None else (lambda: None)
    want = _host_batches(pairs, batch_size, gen(), drop_last)
    got = DevicePairs(pairs, "cpu").epoch(batch_size, gen(), drop_last)
    assert len(got) == len(want)
    for a, b in zip(want, got):
        for x, y in zip(a, b):
            assert x.shape == y.shape and x.dtype == y.dtype and torch.equal(x, y) and y.is_contiguous()
    assert [tuple(t.shape[1] for t in b[:2]) for b in got[:2]] == [tuple(t.shape[1] for t in b[:2])
                                                                    for b in want[:2]]


def test_length_buckets_keep_every_pair_once_and_pad_less():
    g = torch.Generator().manual_seed(5)
    lengths = torch.randint(1, 40, (64,), generator=g).tolist()
    pairs = ([[5] * n for n in lengths], [[6] * n for n in lengths])
    plain = DevicePairs(pairs, "cpu").epoch(8, torch.Generator().manual_seed(1))
    bucketed = DevicePairs(pairs, "cpu").epoch(8, torch.Generator().manual_seed(1), length_buckets=4)
    seen = sorted(int((b[0][i] != 0).sum()) for b in bucketed for i in range(8))
    assert seen == sorted(lengths)
    padded = [sum(b[0].numel() for b in bs) for bs in (plain, bucketed)]
    assert padded[1] < padded[0]
    assert bucket_by_length(torch.arange(6), torch.tensor([3, 1, 2, 9, 8, 7]), 3, 1).tolist() == [1, 2, 0, 5, 4, 3]


def test_validation_runs_the_model_once_per_batch(tmp_path, monkeypatch):
    import darts_nas.run.seq2seq as seq2seq_run
    from darts_nas.config import TrainConfig

    arch = "TransformerArch(splits=2, encoder=[['attn_4', 'ffn']], decoder=[['enc_attn_4', 'ffn']])"
    c = TrainConfig(genotype=arch, dataset="copy", d_model=16, task_size=64, max_length=5, batch_size=4, epochs=1,
                    progress=False, device="cpu")
    run = seq2seq_run.TransformerTrainRun(c, tmp_path / "t", echo=lambda *a: None)
    monkeypatch.setattr(seq2seq_run, "decode_split", lambda *a, **k: (["s1 s2"], ["s1 s2"]))  # BLEU aside
    run.model.eval()
    with torch.no_grad():
        want = [(seq2seq_loss(run.model(b[0], b[1]), b[2]), b[2]) for b in run.val_batches]
    tokens = sum(int((y != 0).sum()) for _, y in want)
    calls = []
    handle = run.model.register_forward_hook(lambda *a: calls.append(1))
    metrics = run.validate()
    handle.remove()
    assert len(run.val_batches) >= 2 and len(calls) == len(run.val_batches)
    assert metrics["val_loss"] == pytest.approx(sum(float(l) * int((y != 0).sum()) for l, y in want) / tokens,
                                                rel=1e-12)


def test_length_buckets_is_a_setting_of_search_and_training():
    from darts_nas.config import SearchConfig, TrainConfig

    assert SearchConfig().length_buckets == 0 and TrainConfig().length_buckets == 0  # off: today's batches
    SearchConfig(space="rev-transformer", dataset="copy", length_buckets=4).validate()
    for cls, kw in ((SearchConfig, dict(space="rev-transformer")), (TrainConfig, {})):
        with pytest.raises(DartsNasError, match="--length-buckets cannot be negative"):
            cls(dataset="copy", length_buckets=-1, **kw).validate()
