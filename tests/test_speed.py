"""The speed paths compute the same function as the plain eager code (float64 where the claim is exact),
and the step a CUDA graph captures never reads back to the host. CUDA itself is not available here: what needs it
(capture and replay) is checked by `darts-nas bench --cuda-graphs --check` on a GPU."""

import contextlib

import pytest
import torch

from darts_nas.bench import measure_search_step
from darts_nas.config import SearchConfig, TrainConfig
from darts_nas.errors import DartsNasError
from darts_nas.genotypes import get_genotype
from darts_nas.nets import NetworkCIFAR
from darts_nas.run.common import make_sgd, restore_states, set_lr
from darts_nas.run.graphs import CapturedStep
from darts_nas.run.search import build_optimizers, search_step_fn
from darts_nas.run.train import train_step_fn
from darts_nas.spaces import DartsCNNSearchModel
from darts_nas.spaces.fused import check_fusable
from darts_nas.strategies import Bilevel, architecture_gradient


def search_model(seed=0, **kw):
    torch.manual_seed(seed)
    model = DartsCNNSearchModel(**{"C": 8, "num_classes": 5, "layers": 5, **kw}).double()
    with torch.no_grad():  # alphas away from uniform so every op weight differs
        for a in model.arch_parameters():
            a.normal_(0, 0.7)
    return model


def batch(seed=1, n=6, size=16, classes=5, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, size, size, generator=g, dtype=dtype), torch.randint(0, classes, (n,), generator=g)


def all_grads(model, b):
    loss, logits = model.loss(b)
    params = model.arch_parameters() + model.weight_parameters()
    return loss.detach(), logits.detach(), torch.autograd.grad(loss, params)


def assert_same(a, b, tol=1e-12):
    for x, y in zip(a, b):
        scale = max(y.abs().max().item(), 1e-30)
        assert (x - y).abs().max().item() <= tol * scale


# ---------------------------------------------------------------------------------------------------------------
# fused ops, cell checkpointing, precision
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("partial,edge_norm,nhwc", [(1, False, False), (1, False, True), (2, True, False),
                                                    (2, False, True)])
def test_fused_ops_are_the_same_function(partial, edge_norm, nhwc):
    """Loss, logits, and the gradient of every weight and alpha, normal and reduction cells, both layouts."""
    model = search_model(partial_channels=partial, edge_normalization=edge_norm).use_channels_last(nhwc)
    b = batch()
    loss, logits, grads = all_grads(model, b)
    model.use_fused_ops()
    loss_f, logits_f, grads_f = all_grads(model, b)
    assert abs(loss_f - loss).item() < 1e-12
    assert_same([logits_f], [logits])
    assert_same(grads_f, grads, 1e-10)
    assert all(g.abs().sum() > 0 for g in grads)  # every parameter is reached, so the comparison covers it


def test_fused_ops_second_order_gradient_is_unchanged():
    model = search_model(1)
    train, val = batch(2), batch(3)
    ref = architecture_gradient(model, train, val, order=2, eta=0.05, hvp="finite-difference")
    model.use_fused_ops()
    assert_same(architecture_gradient(model, train, val, order=2, eta=0.05, hvp="finite-difference"), ref, 1e-9)


def test_fused_ops_refuse_ops_they_do_not_batch():
    with pytest.raises(DartsNasError, match="conv_7x1_1x7"):
        check_fusable(["none", "conv_7x1_1x7"])
    model = DartsCNNSearchModel(C=4, layers=3, primitives=["none", "skip_connect", "conv_7x1_1x7"])
    with pytest.raises(DartsNasError, match="fuse-ops"):
        model.use_fused_ops()


@pytest.mark.parametrize("order,hvp", [(1, "finite-difference"), (2, "finite-difference"), (2, "exact")])
def test_cell_checkpointing_gives_the_same_architecture_gradient(order, hvp):
    """The recomputation must use w', w + r v and w - r v, not the module's own weights: the second order
    evaluates the network functionally at shifted weights and differentiates it after that has ended."""
    model = search_model(2)
    train, val = batch(4), batch(5)
    ref = architecture_gradient(model, train, val, order=order, eta=0.05, hvp=hvp)
    model.use_cell_checkpointing()
    assert_same(architecture_gradient(model, train, val, order=order, eta=0.05, hvp=hvp), ref, 1e-12)
    _, _, g1 = all_grads(model, train)
    model.use_cell_checkpointing(False)
    _, _, g0 = all_grads(model, train)
    assert_same(g1, g0, 1e-12)


def test_bf16_precision_is_close_to_fp32_and_keeps_the_loss_in_fp32():
    model = search_model(3).float()
    x, y = batch(6, n=16, dtype=torch.float32)
    loss32, logits32 = model.loss((x, y))
    model.use_precision("bf16")
    loss16, logits16 = model.loss((x, y))
    assert logits16.dtype == torch.bfloat16 and loss16.dtype == torch.float32
    assert abs(loss16.item() - loss32.item()) < 0.03 * loss32.item()
    with pytest.raises(DartsNasError, match="precision"):
        model.use_precision("fp8")


# ---------------------------------------------------------------------------------------------------------------
# what a CUDA graph needs: optimizers that read the learning rate from a tensor, no host synchronization
# ---------------------------------------------------------------------------------------------------------------
def test_graph_safe_sgd_takes_the_papers_step_with_the_current_learning_rate():
    """w <- w - lr (momentum * buf + g + wd w), buf <- momentum * buf + g + wd w, computed by hand; the lr changes
    between steps through set_lr and must be the one used."""
    torch.manual_seed(0)
    w = [torch.randn(5, 3, dtype=torch.float32, requires_grad=True), torch.randn(7, requires_grad=True)]
    opt = make_sgd(w, 0.1, momentum=0.9, weight_decay=0.01, graph_safe=True)
    assert isinstance(opt.param_groups[0]["lr"], torch.Tensor)
    ref = [p.detach().clone().double() for p in w]
    bufs = [None, None]
    for step, lr in enumerate([0.1, 0.05, 0.02]):
        set_lr(opt, lr)
        grads = [torch.randn_like(p) for p in w]
        for p, g in zip(w, grads):
            p.grad = g
        opt.step()
        for i, g in enumerate(grads):
            d = g.double() + 0.01 * ref[i]
            bufs[i] = d if bufs[i] is None else 0.9 * bufs[i] + d
            ref[i] = ref[i] - lr * bufs[i]
    for p, r in zip(w, ref):
        torch.testing.assert_close(p.detach().double(), r, rtol=1e-5, atol=1e-6)


def test_learning_rate_tensor_survives_a_checkpoint_round_trip():
    w = [torch.nn.Parameter(torch.randn(3))]
    opt = make_sgd(w, 0.1, 0.9, 0.0, graph_safe=True)
    state = make_sgd(w, 0.3, 0.9, 0.0).state_dict()  # saved by an eager run: the lr is a number
    restore_states({"optimizer": state}, {"optimizer": opt}, "test")  # as a resumed run loads it
    lr = opt.param_groups[0]["lr"]
    assert isinstance(lr, torch.Tensor) and lr.item() == pytest.approx(0.3)
    set_lr(opt, 0.2)
    assert opt.param_groups[0]["lr"] is lr and lr.item() == pytest.approx(0.2)


@contextlib.contextmanager
def no_host_reads():
    """Every way a tensor value reaches Python raises inside the block: what CUDA graph capture forbids."""
    names = ["item", "tolist", "cpu", "numpy", "__bool__", "__float__", "__int__", "__index__"]
    saved = {n: getattr(torch.Tensor, n) for n in names}

    def refuse(name):
        def f(self, *args, **kwargs):
            raise AssertionError(f"host read: Tensor.{name}")
        return f

    try:
        for n in names:
            setattr(torch.Tensor, n, refuse(n))
        yield
    finally:
        for n, f in saved.items():
            setattr(torch.Tensor, n, f)


def test_no_host_reads_guard_catches_them():
    t = torch.ones(())
    with no_host_reads(), pytest.raises(AssertionError, match="host read"):
        float(t)
    assert float(t) == 1.0


@pytest.mark.parametrize("order,hvp,fused,ckpt", [(1, "finite-difference", False, False),
                                                  (1, "finite-difference", True, True),
                                                  (2, "finite-difference", True, False),
                                                  (2, "exact", False, True)])
def test_search_step_never_reads_back_to_the_host(order, hvp, fused, ckpt):
    torch.manual_seed(0)
    model = DartsCNNSearchModel(C=4, num_classes=5, layers=3, edge_normalization=True)
    model.use_fused_ops(fused).use_cell_checkpointing(ckpt)
    w_opt, a_opt = build_optimizers(model, SearchConfig(cuda_graphs=True))  # the graph-safe optimizers
    # the step function a CUDA graph would capture, called directly (no CUDA here)
    step = search_step_fn(model, Bilevel(order=order, hvp=hvp), w_opt, a_opt, SearchConfig(cuda_graphs=False))
    x, y = batch(7, n=4, size=8, dtype=torch.float32)
    step(x, y, x, y)  # the first step creates the momentum buffers (outside the graph, as in CapturedStep's warm-up)
    with no_host_reads():
        loss, logits = step(x, y, x.flip(0), y.flip(0))
    assert torch.isfinite(loss) and logits.shape == (4, 5)


def test_train_step_with_drop_path_tensor_never_reads_back_to_the_host():
    torch.manual_seed(0)
    model = NetworkCIFAR(get_genotype("DARTS_V2"), C=8, layers=5, num_classes=5, auxiliary=True).train()
    opt = make_sgd(model.parameters(), 0.025, 0.9, 3e-4, graph_safe=True)
    model.use_drop_path_tensor()
    step = train_step_fn(model, opt, TrainConfig(channels=8, layers=5, precision="bf16"))
    x, y = batch(8, n=4, size=32, dtype=torch.float32)
    step(x, y)
    model.drop_path_prob = 0.3
    with no_host_reads():
        loss, _ = step(x, y)
    assert torch.isfinite(loss)


# ---------------------------------------------------------------------------------------------------------------
# drop-path as a tensor
# ---------------------------------------------------------------------------------------------------------------
def test_drop_path_tensor_gives_the_same_network_function():
    torch.manual_seed(0)
    a = NetworkCIFAR(get_genotype("DARTS_V2"), C=8, layers=5, num_classes=5).train()
    b = NetworkCIFAR(get_genotype("DARTS_V2"), C=8, layers=5, num_classes=5).train()
    b.load_state_dict(a.state_dict())
    b.use_drop_path_tensor()
    x = torch.randn(8, 3, 32, 32)
    for p in (0.3, 0.0):
        a.drop_path_prob = p
        b.drop_path_prob = p
        assert b.drop_path_tensor.item() == pytest.approx(p)
        torch.manual_seed(5)
        out_a = a(x)
        torch.manual_seed(5)
        out_b = b(x)
        torch.testing.assert_close(out_b, out_a, rtol=1e-5, atol=1e-6)
    a.drop_path_prob = b.drop_path_prob = 0.5
    a.eval(), b.eval()
    torch.testing.assert_close(b(x), a(x))  # no drop-path in eval mode
    assert "drop_path_tensor" not in b.state_dict()  # not saved with the weights


# ---------------------------------------------------------------------------------------------------------------
# CapturedStep bookkeeping (its three CUDA calls replaced by what they stand for)
# ---------------------------------------------------------------------------------------------------------------
class FakeGraphStep(CapturedStep):
    """Eager warm-up as is; 'capture' records nothing and computes nothing (as a real capture runs no kernel);
    'replay' runs the step on the captured input tensors and writes into the captured outputs."""

    def __init__(self, step, warmup=2):
        super().__init__(step, warmup)
        self.events = []

    def _run_eager(self):
        self.events.append("eager")
        return self.step(*self.inputs)

    def _capture(self):
        self.events.append("capture")
        self.graph = object()
        return None

    def _replay(self):
        self.events.append("replay")
        out = self.step(*self.inputs)
        if self.outputs is None:
            self.outputs = out
        else:
            for static, new in zip(self.outputs, out):
                static.copy_(new)


def test_captured_step_runs_each_batch_once_on_its_static_inputs():
    """Four different batches through the wrapper give the parameters four plain steps give."""
    config = SearchConfig(channels=4, layers=3, batch_size=4, order=2)
    results = []
    for wrapped in (False, True):
        torch.manual_seed(0)
        model = DartsCNNSearchModel(C=4, num_classes=5, layers=3)
        w_opt, a_opt = build_optimizers(model, SearchConfig(**{**config.to_dict(), "cuda_graphs": True}))
        step = search_step_fn(model, Bilevel(order=2), w_opt, a_opt, config)
        runner = FakeGraphStep(step) if wrapped else step
        losses = []
        for i in range(5):
            set_lr(w_opt, 0.1 / (i + 1))
            x, y = batch(10 + i, n=4, size=8, dtype=torch.float32)
            losses.append(runner(x, y, x.flip(0), y.flip(0))[0].clone())
        results.append((torch.stack(losses), [p.detach().clone() for p in model.parameters()]))
        if wrapped:
            assert runner.events == ["eager", "eager", "capture", "replay", "replay", "replay"]
            assert torch.equal(runner.inputs[0], x)  # the last batch was copied into the captured inputs
    (l0, p0), (l1, p1) = results
    torch.testing.assert_close(l1, l0, rtol=0, atol=0)
    for a, b in zip(p1, p0):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_captured_step_refuses_a_batch_of_another_shape():
    runner = FakeGraphStep(lambda x: (x * 2,), warmup=1)
    runner(torch.ones(4, 3))
    with pytest.raises(DartsNasError, match="fixed shape"):
        runner(torch.ones(3, 3))


def test_cuda_graphs_setting_selects_the_captured_step_and_the_drop_path_tensor():
    model = DartsCNNSearchModel(C=4, num_classes=5, layers=3)
    graphs = SearchConfig(cuda_graphs=True)
    w_opt, a_opt = build_optimizers(model, graphs)
    assert isinstance(search_step_fn(model, Bilevel(), w_opt, a_opt, graphs), CapturedStep)
    assert not isinstance(search_step_fn(model, Bilevel(), w_opt, a_opt, SearchConfig()), CapturedStep)
    net = NetworkCIFAR(get_genotype("DARTS_V2"), C=8, layers=5, num_classes=5)
    opt = make_sgd(net.parameters(), 0.1, 0.9, 0.0, graph_safe=True)
    assert isinstance(train_step_fn(net, opt, TrainConfig(cuda_graphs=True)), CapturedStep)
    assert isinstance(net.drop_path_tensor, torch.Tensor)


def test_cuda_graphs_on_cpu_is_a_clear_error(tmp_path):
    from darts_nas.run import start_search

    config = SearchConfig(dataset="synthetic", synthetic_size=64, channels=4, layers=3, batch_size=8, epochs=1,
                          device="cpu", cuda_graphs=True, progress=False)
    with pytest.raises(DartsNasError, match="needs a CUDA device"):
        start_search(config, tmp_path / "run", echo=lambda *_: None)


# ---------------------------------------------------------------------------------------------------------------
# the bench's own check
# ---------------------------------------------------------------------------------------------------------------
def test_bench_check_reports_the_fast_path_close_to_plain():
    r = measure_search_step("cpu", batch_size=4, channels=4, layers=3, order=1, hvp="finite-difference", steps=1,
                            warmup=0, fuse_ops=True, checkpoint_cells=True, check=True)
    assert r["check"]["steps"] == 4 and r["check"]["max_rel_loss_diff"] < 1e-5
    assert r["median_s"] > 0 and r["peak_memory_bytes"] > 0


def test_bench_refuses_cuda_graphs_without_cuda_in_one_line(capsys):
    from darts_nas.cli import main

    assert main(["bench", "search", "--device", "cpu", "--cuda-graphs", "--steps", "1"]) == 2
    err = capsys.readouterr().err
    assert "needs a CUDA device" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
