"""bench rl: the RL encoders' milliseconds per frame, acting and learning (PPO)."""

from __future__ import annotations

import time

import torch

from .common import sync


# -- RL-DARTS: the encoders' cost per frame -------------------------------------------------------------------
# The heaviest cell of the authors' op set (every kept edge a 3x3 conv): the fixed-cell encoder's upper bound.
RL_BENCH_CELL = ("RLCell(ops='rl', nodes=[[('conv_3x3', 0)], [('conv_3x3', 0), ('conv_3x3', 1)], "
                 "[('conv_3x3', 1), ('conv_3x3', 2)], [('conv_3x3', 2), ('conv_3x3', 3)]])")


def bench_rl(device: str = "cpu", depths=(16, 32, 32), act_batch: int = 64, minibatch: int = 256,
             genotype: str | None = None, steps: int = 3, warmup: int = 1) -> list[dict]:
    """Milliseconds per frame of each RL encoder in a PPO agent on 64x64 Procgen frames: acting (a forward pass
    over `act_batch` environments, no gradient) and learning (PPO loss, backward and Adam step on a minibatch).
    A PPO run costs about act + epochs x learn per frame, plus the environment."""
    from ..genotypes.rl import load_rl_cell
    from ..rl.encoders import make_encoder
    from ..rl.ppo import ActorCritic, ppo_loss
    from ..run.common import resolve_device

    dev = resolve_device(device)
    cell = load_rl_cell(genotype or RL_BENCH_CELL)
    gen = torch.Generator().manual_seed(0)
    obs = torch.randint(0, 256, (max(act_batch, minibatch), 64, 64, 3), dtype=torch.uint8, generator=gen).to(dev)
    results = []
    for label, name, kw in (("IMPALA-CNN", "impala", {}), ("supernet, authors' ops", "darts", {"ops": "rl"}),
                            ("supernet, DARTS ops", "darts", {"ops": "darts"}),
                            ("fixed cell" + ("" if genotype else " (all 3x3 convs)"), "cell", {"genotype": cell})):
        torch.manual_seed(0)
        agent = ActorCritic(make_encoder(name, (64, 64, 3), depths=depths, **kw), 15).to(dev)
        opt = torch.optim.Adam(agent.parameters(), lr=1e-4)
        actions = torch.randint(0, 15, (minibatch,), generator=gen).to(dev)
        zeros = torch.zeros(minibatch, device=dev)
        adv = torch.randn(minibatch, generator=gen).to(dev)

        def act():
            with torch.no_grad():
                agent(obs[:act_batch])

        def learn():
            logits, values = agent(obs[:minibatch])
            loss = ppo_loss(logits, values, actions, zeros - 2.7, zeros, adv, zeros, 0.2, 0.2, 0.5, 0.01)["loss"]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        timing = {}
        for what, fn, n in (("act", act, act_batch), ("learn", learn, minibatch)):
            for _ in range(warmup):
                fn()
            times = []
            for _ in range(steps):
                sync(dev)
                t = time.perf_counter()
                fn()
                sync(dev)
                times.append(time.perf_counter() - t)
            timing[what] = 1e3 * sorted(times)[len(times) // 2] / n
        results.append({"encoder": label, "depths": list(depths), "params": sum(p.numel() for p in agent.parameters()),
                        "act_ms_per_frame": timing["act"], "learn_ms_per_frame": timing["learn"],
                        "act_batch": act_batch, "minibatch": minibatch})
    return results


def format_rl_table(results: list[dict]) -> str:
    lines = ["| encoder | depths | parameters | act ms/frame | learn ms/frame | PPO ms/frame (act + 2 x learn) |",
             "|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['encoder']} | {','.join(map(str, r['depths']))} | {r['params']:,} | "
                     f"{r['act_ms_per_frame']:.2f} | {r['learn_ms_per_frame']:.2f} | "
                     f"{r['act_ms_per_frame'] + 2 * r['learn_ms_per_frame']:.2f} |")
    return "\n".join(lines)
