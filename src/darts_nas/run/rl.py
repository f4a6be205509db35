"""An RL run (``darts-nas rl search`` / ``rl train``): iterations of (act in the environments for
--rollout-steps steps, update the learner) on the shared epoch loop (an iteration is the loop's epoch), a
checkpoint and a metrics line after each, the derived cell of the supernet as it goes, and an evaluation on
training and test levels at the end.

Everything that decides the future is in the checkpoint (agent, optimizers, replay, environment state, current
frames, running episode returns, random generators), so a resumed run on the CPU continues bit for bit."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..errors import DartsNasError
from ..fileio import atomic_write_json
from ..genotypes import save_genotype
from ..genotypes.rl import RLCell, load_rl_cell
from .checkpoint import CHECKPOINT, load_checkpoint, save_checkpoint
from .checkpoint import RL_KIND
from .common import NonFiniteLoss, check_resume, refuse_existing_run, resolve_device, write_metrics
from .loop import EpochRun
from .log import Progress, format_duration
from ..rl.config import RLConfig
from ..rl.encoders import make_encoder
from ..rl.envs import make_env

EVAL_STREAM = 7919  # the evaluation's own random stream, so that evaluating never moves the training's


def learner_class(name: str):
    from ..rl import LEARNERS
    from ..errors import registry_lookup
    return registry_lookup(LEARNERS, name, "learner")


def build_learner(config: RLConfig, obs_shape, num_actions: int, device, generator, genotype=None):
    encoder = make_encoder(config.encoder, obs_shape, depths=config.depth_list(), ops=config.ops, nodes=config.nodes,
                           tau=config.tau, genotype=genotype)
    learner = learner_class(config.algo)(config, encoder, num_actions, device, generator)
    learner.start(obs_shape)
    return learner


@dataclass
class RLResult:
    run_dir: Path
    epochs_done: int
    finished: bool
    history: list = field(default_factory=list)
    final: dict | None = None
    genotype: object = None


class RLRun(EpochRun):
    """An RL run on the shared epoch loop (:class:`~darts_nas.run.loop.EpochRun`), one iteration per epoch."""

    unit = "iteration"

    def __init__(self, config: RLConfig, run_dir, echo=print, command: str = "rl train"):
        config.validate()
        self.config, self.run_dir, self.echo, self.command = config, Path(run_dir), echo, command
        if config.threads > 0:
            torch.set_num_threads(config.threads)
        self.device = resolve_device(config.device)
        torch.manual_seed(config.seed)
        self.generator = torch.Generator().manual_seed(config.seed)
        self.env = make_env(config.env, config.num_envs, config.seed, config.distribution_mode, config.num_levels,
                            config.start_level)
        self.genotype_in = load_rl_cell(config.genotype) if config.encoder == "cell" else None
        self.learner = build_learner(config, self.env.obs_shape, self.env.num_actions, self.device, self.generator,
                                     self.genotype_in)
        self.encoder = self.learner.agent.encoder
        self.obs = self.env.reset().to(self.device)
        self.ep_return = torch.zeros(config.num_envs)
        self.ep_len = torch.zeros(config.num_envs, dtype=torch.long)
        self.epoch = 0
        self.frames = 0
        self.history: list[dict] = []
        self.seconds = 0.0

    # -- checkpoint ------------------------------------------------------------------------------------------
    def state(self) -> dict:
        return {"kind": RL_KIND, "config": self.config.to_dict(), "command": self.command,
                "learner": self.learner.state_dict(), "env": self.env.get_state(), "obs": self.obs.cpu(),
                "ep_return": self.ep_return, "ep_len": self.ep_len, "generator": self.generator.get_state(),
                "torch_rng": torch.get_rng_state(), "epoch": self.epoch, "frames": self.frames,
                "history": self.history, "seconds": self.seconds, "obs_shape": list(self.env.obs_shape),
                "num_actions": self.env.num_actions,
                "genotype": self.genotype_in.to_dict() if self.genotype_in is not None else None}

    def load_state(self, s: dict) -> None:
        try:
            self.learner.load_state_dict(s["learner"])
        except (RuntimeError, KeyError, ValueError) as e:
            raise DartsNasError(f"checkpoint does not match this agent: {str(e).splitlines()[0]}") from None
        self.env.set_state(s["env"])
        self.obs = s["obs"].to(self.device)
        self.ep_return, self.ep_len = s["ep_return"].clone(), s["ep_len"].clone()
        self.generator.set_state(s["generator"])
        torch.set_rng_state(s["torch_rng"])
        self.epoch, self.frames, self.history, self.seconds = s["epoch"], s["frames"], list(s["history"]), s["seconds"]

    # -- the loop --------------------------------------------------------------------------------------------
    def collect(self, bar) -> list[tuple[float, int]]:
        """One rollout: --rollout-steps steps of every copy. Returns the (return, length) of episodes that ended."""
        finished = []
        for t in range(self.config.rollout_steps):
            action, extra = self.learner.act(self.obs)
            obs, reward, done = self.env.step(action.cpu())
            self.learner.record(t, self.obs, action, extra, reward.to(self.device), done.to(self.device))
            self.ep_return += reward
            self.ep_len += 1
            if done.any():
                for e in torch.nonzero(done).flatten().tolist():
                    finished.append((float(self.ep_return[e]), int(self.ep_len[e])))
                self.ep_return[done] = 0.0
                self.ep_len[done] = 0
            self.obs = obs.to(self.device)
            bar.update(1)
        self.frames += self.config.frames_per_iteration
        return finished

    def begin(self) -> None:
        """A new run's first files and its line (a resumed run has them already)."""
        if self.epoch:
            return
        c = self.config
        self.run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.run_dir / "config.json", c.to_dict())
        if self.genotype_in is not None:
            save_genotype(self.genotype_in, self.run_dir)
        params = sum(p.numel() for p in self.learner.weight_params)
        alphas = sum(p.numel() for p in self.learner.arch_params)
        self.echo(f"{self.command}: {c.algo} with the {c.encoder} encoder ({params / 1e6:.3f}M weights"
                  f"{', %d alphas' % alphas if self.learner.arch_params else ''}) "
                  f"on {c.env} ({c.num_envs} copies, {c.num_levels or 'all'} levels), {c.epochs} iterations of "
                  f"{c.frames_per_iteration} frames; run directory {self.run_dir}")

    def run_epoch(self, epoch: int) -> dict:
        """One iteration (the loop's epoch): a rollout, the learner's update, the NaN stop, the metrics line."""
        c = self.config
        start = time.perf_counter()
        bar = Progress(c.rollout_steps, f"iteration {epoch + 1}/{c.epochs}", enabled=c.progress)
        try:
            finished = self.collect(bar)
            parts = self.learner.update(self.obs)
        finally:
            bar.close()
        values = {k: float(v) for k, v in parts.items()}  # the iteration's one read of the learner's figures
        self.check_values(values, epoch)
        self.seconds += time.perf_counter() - start
        return self.record(finished, values, time.perf_counter() - start, epoch + 1)

    def check_values(self, values: dict, epoch: int) -> None:
        """The NaN stop, in iterations: a non-finite figure of the update ends the run at its last checkpoint."""
        bad = [k for k, v in values.items() if not math.isfinite(v)]
        if bad:
            raise NonFiniteLoss(f"the {bad[0].replace('_', ' ')} became {values[bad[0]]} in iteration "
                                f"{epoch + 1}; the run stopped and "
                                f"{self.last_checkpoint().replace('epoch', 'iteration')}. "
                                "Try a smaller --lr or --grad-clip.")

    def save(self) -> None:
        """The derived cell (every --derive-every iterations and at the last), the checkpoint, metrics.jsonl."""
        c = self.config
        if self.learner.arch_params and (self.epoch % c.derive_every == 0 or self.epoch == c.epochs):
            save_genotype(self.encoder.genotype(), self.run_dir)
            atomic_write_json(self.run_dir / "alphas.json", self.encoder.alpha_record())
        save_checkpoint(self.run_dir / CHECKPOINT, self.state())
        write_metrics(self.run_dir, self.history)

    def report(self, record: dict) -> None:
        self.echo(self.summary(record))

    def end(self, finished: bool) -> RLResult:
        return self.finish() if finished else RLResult(self.run_dir, self.epoch, False, self.history)

    def record(self, finished, values: dict, seconds: float, done: int) -> dict:
        """The metrics line of iteration `done` (1-based). "epoch" is the iteration (the plots' x axis); the
        supernet's op weights and derived cell are in the same form as a search's, so that `darts-nas plot` draws
        them."""
        c = self.config
        r = {"iteration": done, "epoch": done, "frames": self.frames, "episodes": len(finished),
             "seconds": seconds, "fps": c.frames_per_iteration / max(seconds, 1e-9), **values,
             **self.learner.exploration()}
        if finished:
            rets = torch.tensor([f[0] for f in finished], dtype=torch.float64)
            r.update(train_return=float(rets.mean()), train_return_std=float(rets.std(unbiased=False)),
                     episode_length=sum(f[1] for f in finished) / len(finished))
        if self.learner.arch_params:
            g = self.encoder.genotype()
            r.update(alpha_entropy=float(self.encoder.alpha_entropy().detach()), genotype=g.to_text(),
                     param_free_ops=g.parameter_free_ops(), primitives=list(self.encoder.primitives),
                     op_weights={"cell": self.encoder.op_weights().detach().cpu().tolist()},
                     edges={"cell": self.encoder.edge_names()})
        if c.eval_every and done % c.eval_every == 0 and done < c.epochs:
            test = evaluate_learner(self.learner, c, "test", c.eval_episodes, self.device)
            r.update(test_return=test["mean"], test_return_std=test["std"])
        return r

    def summary(self, r: dict) -> str:
        parts = [f"iteration {r['iteration']}/{self.config.epochs}", f"frames {r['frames']:,}"]
        if "train_return" in r:
            parts.append(f"return {r['train_return']:.2f} ({r['episodes']} episodes)")
        else:
            parts.append("no episode ended")
        if "loss" in r:
            parts.append(f"loss {r['loss']:.4f}")
        if "entropy" in r:
            parts.append(f"entropy {r['entropy']:.3f}")
        if "epsilon" in r:
            parts.append(f"epsilon {r['epsilon']:.3f}")
        if "alpha_entropy" in r:
            parts.append(f"alpha entropy {r['alpha_entropy']:.3f}")
        if "test_return" in r:
            parts.append(f"test return {r['test_return']:.2f}")
        parts.append(f"{r['fps']:.0f} frames/s")
        return "  ".join(parts)

    def finish(self) -> RLResult:
        c = self.config
        self.echo(f"evaluating on training and test levels ({c.eval_episodes} episodes each)")
        final = {"train": evaluate_learner(self.learner, c, "train", c.eval_episodes, self.device),
                 "test": evaluate_learner(self.learner, c, "test", c.eval_episodes, self.device),
                 "frames": self.frames, "iterations": self.epoch, "seconds": self.seconds}
        genotype = self.encoder.genotype()
        if genotype is not None:
            final["genotype"] = genotype.to_dict()
        atomic_write_json(self.run_dir / "results.json", final)
        self.echo(f"after {self.frames:,} frames ({format_duration(self.seconds)}): mean return {final['train']['mean']:.2f} "
                  f"+- {final['train']['std']:.2f} on training levels, {final['test']['mean']:.2f} +- "
                  f"{final['test']['std']:.2f} on test levels")
        return RLResult(self.run_dir, self.epoch, True, self.history, final, genotype)


def level_range(config: RLConfig, levels: str) -> tuple[int, int]:
    """(num_levels, start_level) of the training levels or the test levels (all levels, the Procgen protocol's
    test distribution)."""
    if levels == "train":
        return config.num_levels, config.start_level
    return 0, 0


@torch.no_grad()
def evaluate_learner(learner, config: RLConfig, levels: str, episodes: int, device) -> dict:
    """Mean and spread of the return of `episodes` episodes: one per environment copy, each copy's first, so
    that short episodes are not over-counted. The policy samples its actions (PPO) or acts with
    --eval-epsilon (DQN); its own random stream leaves the training's untouched."""
    num_levels, start_level = level_range(config, levels)
    env = make_env(config.env, episodes, config.seed + EVAL_STREAM, config.distribution_mode, num_levels, start_level)
    saved = learner.generator.get_state()
    learner.generator.manual_seed(config.seed + EVAL_STREAM)
    try:
        obs = env.reset().to(device)
        total = torch.zeros(episodes)
        running = torch.ones(episodes, dtype=torch.bool)
        steps = 0
        while running.any() and steps < config.eval_max_steps:
            action, _ = learner.act(obs, evaluate=True)
            obs, reward, done = env.step(action.cpu())
            obs = obs.to(device)
            total += reward * running
            running &= ~done
            steps += 1
    finally:
        learner.generator.set_state(saved)
    rets = total.double()
    return {"mean": float(rets.mean()), "std": float(rets.std(unbiased=False)), "episodes": episodes,
            "levels": levels, "unfinished": int(running.sum())}


# -- the entry points the command line uses --------------------------------------------------------------------
def start_rl(config: RLConfig, run_dir, echo=print, command: str = "rl train") -> RLRun:
    refuse_existing_run(run_dir, command)
    return RLRun(config, run_dir, echo, command)


def resume_rl(run_dir, echo=print, **changes) -> RLRun:
    run_dir = Path(run_dir)
    check_resume(run_dir, changes)
    return rl_from_state(run_dir, load_checkpoint(run_dir, kind=RL_KIND), echo, **changes)


def rl_from_state(run_dir, state: dict, echo=print, **changes) -> RLRun:
    """The RL run of a loaded checkpoint `state`, ready to continue (resume_rl checks and loads it)."""
    config = RLConfig.from_dict({**state["config"], **changes})
    run = RLRun(config, run_dir, echo, state.get("command", "rl train"))
    run.load_state(state)
    return run


def evaluate_rl(path, episodes: int | None = None, device: str = "auto", levels=("train", "test")) -> dict:
    """Mean return of a finished (or interrupted) RL run's agent on training and test levels."""
    state = load_checkpoint(path, kind=RL_KIND)
    config = RLConfig.from_dict({**state["config"], "device": device})
    dev = resolve_device(device)
    genotype = None if state["genotype"] is None else RLCell.from_dict(state["genotype"])
    learner = build_learner(config, tuple(state["obs_shape"]), state["num_actions"], dev,
                            torch.Generator().manual_seed(config.seed), genotype)
    try:
        learner.load_state_dict(state["learner"])
    except (RuntimeError, KeyError, ValueError) as e:
        raise DartsNasError(f"checkpoint does not match its agent: {str(e).splitlines()[0]}") from None
    n = episodes or config.eval_episodes
    out = {lv: evaluate_learner(learner, config, lv, n, dev) for lv in levels}
    out.update(iterations=state["epoch"], frames=state["frames"], env=config.env, algo=config.algo,
               encoder=config.encoder)
    return out


def derive_rl(path, state: dict | None = None):
    """The cell an RL search's supernet derives at its checkpoint: (genotype, a header line, the op-weight table);
    `state`: the checkpoint, already loaded."""
    state = state if state is not None else load_checkpoint(path, kind=RL_KIND)
    config = RLConfig.from_dict(state["config"])
    if config.encoder != "darts":
        raise DartsNasError(f"{path}: an rl train run of the {config.encoder} encoder has no alphas to derive from")
    learner = build_learner(config, tuple(state["obs_shape"]), state["num_actions"], torch.device("cpu"),
                            torch.Generator(), None)
    learner.load_state_dict(state["learner"])
    enc = learner.agent.encoder
    w = enc.op_weights().detach()
    rows = [f"{'edge':>10}  " + "  ".join(f"{p:>13}" for p in enc.primitives)]
    rows += [f"{name:>10}  " + "  ".join(f"{x:13.4f}" for x in r.tolist()) for name, r in zip(enc.edge_names(), w)]
    header = f"# iteration {state['epoch']}/{config.epochs} ({state['frames']:,} frames) of {path}"
    return enc.genotype(), header, "\n".join(rows)
