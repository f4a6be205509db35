"""The search steps the distributed checks run: each strategy, relaxation and space, a few steps in float64 from a
seeded start on seeded global batches.

Under torchrun (tests/dist_worker.py) each rank feeds its shard of every global batch to the package's own code.
The reference is one process with the same global batches and the same BatchNorm groups: :class:`GhostBatches`
computes every loss as the mean of the losses of the rank-sized chunks, each chunk from the same random-number
state (so Gumbel samples and dropout masks are those the ranks draw). Nothing in the reference touches
torch.distributed: the ranks' averaging is checked against plain single-process autograd.
"""

from __future__ import annotations

import torch

from darts_nas import distributed
from darts_nas.config import SearchConfig
from darts_nas.run.search import build_optimizers, build_search_model
from darts_nas.strategies import ArchRegularizer, alpha_hessian_eigenvalue, strategy_from_config

BATCH = 6          # global batch: 2 and 3 ranks share it
STEPS = 3
IMAGE = dict(channels=4, layers=3, nodes=2, channels_last=False)
CASES = {
    "first-order": dict(IMAGE),
    "second-order-fd": dict(IMAGE, order=2, hvp="finite-difference", discretization="binary",
                            discretization_weight=0.5),
    "second-order-exact": dict(IMAGE, order=2, hvp="exact"),
    "single-level": dict(IMAGE, strategy="single-level"),
    "implicit": dict(IMAGE, strategy="implicit", hvp="exact", neumann_terms=3),
    "gdas": dict(space="nb201", channels=4, cells_per_stage=1, relaxation="hard-gumbel", channels_last=False),
    "pc-darts": dict(IMAGE, partial_channels=2, edge_normalization=True),
    "unas-gen-gap": dict(space="nb201", channels=4, cells_per_stage=1, relaxation="gumbel", channels_last=False,
                         strategy="single-level", estimator="unas", gen_gap=0.5),
    "rnn-second-order": dict(space="darts-rnn", dataset="ptb", units=8, nodes=2, order=2, virtual_step_clip=0.25),
}


class GhostBatches:
    """A search model whose losses are the mean over `n` equal chunks of the batch (the BatchNorm groups of `n`
    ranks), each chunk from the same random-number state; everything else is the model's."""

    def __init__(self, model, n: int, text: bool):
        self.model, self.n, self.text = model, n, text

    def __getattr__(self, name):
        return getattr(self.model, name)

    def _chunks(self, batch):
        if self.text:  # (tokens [T, B], targets [T, B], hidden [B, units])
            x, y, h = batch
            return list(zip(x.chunk(self.n, 1), y.chunk(self.n, 1), h.chunk(self.n, 0)))
        x, y = batch
        return list(zip(x.chunk(self.n), y.chunk(self.n)))

    def _mean(self, fn, batch):
        state = torch.get_rng_state()
        parts = []
        for chunk in self._chunks(batch):
            torch.set_rng_state(state)
            parts.append(fn(chunk))
        return parts

    def loss(self, batch, weights=None):
        parts = self._mean(lambda b: self.model.loss(b, weights), batch)
        return sum(p[0] for p in parts) / self.n, torch.cat([p[1] for p in parts])

    def example_losses(self, batch, weights=None):
        parts = self._mean(lambda b: self.model.example_losses(b, weights), batch)
        return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])

    def training_loss(self, batch):
        parts = self._mean(self.model.training_loss, batch)
        return (sum(p[0] for p in parts) / self.n, sum(p[1] for p in parts) / self.n,
                torch.cat([p[2] for p in parts]))


def global_batches(config, vocab: int = 20):
    """STEPS pairs of (training, validation) global batches, the same on every rank."""
    g = torch.Generator().manual_seed(1)
    out = []
    for _ in range(STEPS):
        pair = []
        for _ in range(2):
            if config.space == "darts-rnn":
                x = torch.randint(0, vocab, (4, BATCH), generator=g)
                y = torch.randint(0, vocab, (4, BATCH), generator=g)
                pair.append((x, y, 0.1 * torch.randn(BATCH, config.units, generator=g, dtype=torch.float64)))
            else:
                pair.append((torch.randn(BATCH, 3, 8, 8, generator=g, dtype=torch.float64),
                             torch.randint(0, 3, (BATCH,), generator=g)))
        out.append(tuple(pair))
    return out


def shard_batch(batch, text: bool):
    if text:
        x, y, h = batch
        return distributed.shard(x, 1), distributed.shard(y, 1), distributed.shard(h, 0)
    return tuple(distributed.shard(t) for t in batch)


def run_case(name: str, ghost: int = 1) -> dict:
    """STEPS strategy steps of case `name`, then the Hessian eigenvalue estimate. Distributed (under torchrun):
    on this rank's shards; else on the whole batches through GhostBatches(`ghost`)."""
    config = SearchConfig(epochs=STEPS, **CASES[name]).validate()
    text = config.space == "darts-rnn"
    torch.manual_seed(0)
    model = build_search_model(config, num_classes=3, in_channels=3, vocab_size=20).double()
    model.set_temperature(1.0)
    w_opt, a_opt = build_optimizers(model, config)
    regularizer = ArchRegularizer(config.resource_weight, config.discretization, config.discretization_weight)
    strategy = strategy_from_config(config, regularizer)
    driver = model if distributed.active() else GhostBatches(model, ghost, text)
    batches = global_batches(config)
    if distributed.active():
        batches = [tuple(shard_batch(b, text) for b in pair) for pair in batches]
    for step, (train, val) in enumerate(batches):
        torch.manual_seed(100 + step)
        strategy.step(driver, train, val, w_opt, a_opt, config.lr, config.grad_clip)
    eigenvalue = alpha_hessian_eigenvalue(driver, [batches[0][1]], iters=4, tol=0.0,
                                          generator=torch.Generator().manual_seed(3))
    return {"weights": [p.detach().clone() for p in model.weight_parameters()],
            "alphas": [a.detach().clone() for a in model.arch_parameters()],
            "genotype": model.genotype().to_text(), "eigenvalue": eigenvalue}


def run_training(ghost: int = 1) -> dict:
    """STEPS training steps of a small evaluation network (auxiliary head, drop-path) in float64. Distributed: the
    package's train_step on this rank's shard. Reference: by hand, each chunk's loss backpropagated from the same
    random-number state and divided by the number of chunks, then the same clip and SGD step."""
    from darts_nas.genotypes import load_genotype
    from darts_nas.nets import NetworkCIFAR
    from darts_nas.run.train import train_step, training_loss

    torch.manual_seed(0)
    model = NetworkCIFAR(load_genotype("DARTS_V2"), C=4, layers=3, num_classes=3, auxiliary=True).double().train()
    model.drop_path_prob = 0.2
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=3e-4)
    g = torch.Generator().manual_seed(2)
    for step in range(STEPS):
        x = torch.randn(BATCH, 3, 32, 32, generator=g, dtype=torch.float64)
        y = torch.randint(0, 3, (BATCH,), generator=g)
        torch.manual_seed(200 + step)
        if distributed.active():
            train_step(model, opt, distributed.shard(x), distributed.shard(y), 0.4, 0.0, 1.0)
            continue
        opt.zero_grad()
        state = torch.get_rng_state()
        for xc, yc in zip(x.chunk(ghost), y.chunk(ghost)):
            torch.set_rng_state(state)
            (training_loss(model, xc, yc, 0.4, 0.0)[0] / ghost).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    return {"weights": [p.detach().clone() for p in model.parameters()]}
