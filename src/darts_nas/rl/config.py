"""Settings of an RL run (``darts-nas rl search|train``) and its presets. One flat dataclass, like the search and
training settings: every field is a flag, a preset fills them with the authors' values."""

from __future__ import annotations

from dataclasses import dataclass

from ..config import Preset, Settings, _f
from ..errors import DartsNasError
from ..genotypes.rl import RL_OP_SETS


def _learners():
    from . import LEARNERS
    return LEARNERS


def _encoders():
    from .encoders import ENCODERS
    return ENCODERS


@dataclass
class RLConfig(Settings):
    # environment
    env: str = _f("procgen:coinrun", "environment: procgen:<game> (the rl extra) or corridor (a small test task)")
    distribution_mode: str = _f("easy", "Procgen distribution mode", ("easy", "hard", "exploration", "memory"))
    num_levels: int = _f(200, "training levels (Procgen: 200 in RL-DARTS; 0: all levels)")
    start_level: int = _f(0, "first training level")
    num_envs: int = _f(64, "environment copies stepped together (RL-DARTS PPO: 64 actors)")
    frames: int = _f(25_000_000, "environment frames of the run over all copies (the paper: 25M)")
    # agent
    algo: str = _f("ppo", "learner: ppo (on-policy) or dqn (double DQN, dueling, n-step, replay)", _learners)
    encoder: str = _f("darts", "image encoder: impala (IMPALA-CNN), darts (the supernet; rl search) or cell (a "
                      "genotype's fixed cell; rl train --genotype)", _encoders)
    genotype: str = _f("", "the cell of --encoder cell: an RL search run directory, genotype file or RLCell(...) text")
    depths: str = _f("16,32,32", "channels of the encoder's stages (IMPALA-CNN: 16,32,32)")
    ops: str = _f("rl", "op set of the supernet: rl (conv_3x3, relu, tanh, skip, zero; the authors') or darts",
                  tuple(RL_OP_SETS))
    nodes: int = _f(4, "intermediate nodes per cell")
    tau: float = _f(1.0, "softmax temperature factor: op weights softmax(tau alpha)")
    arch_update: str = _f("joint", "alphas: joint (in the weights' Adam, the authors' default) or alternating "
                          "(their own Adam, on every other minibatch)", ("joint", "alternating"))
    arch_lr: float = _f(5e-4, "Adam learning rate of the alphas with --arch-update alternating")
    # optimization (shared)
    lr: float = _f(5e-4, "Adam learning rate (RL-DARTS PPO: 5e-4; Rainbow: 5e-5)")
    adam_eps: float = _f(1e-5, "Adam epsilon")
    grad_clip: float = _f(0.5, "gradient-norm clip (0: off)")
    gamma: float = _f(0.999, "discount (PPO: 0.999; Rainbow: 0.99)")
    rollout_steps: int = _f(1024, "steps per environment copy per iteration (PPO: 1024)")
    # PPO
    ppo_epochs: int = _f(2, "PPO: passes over each rollout")
    minibatch_size: int = _f(2048, "PPO: frames per minibatch")
    clip: float = _f(0.2, "PPO: ratio clip")
    value_clip: float = _f(0.2, "PPO: value clip (0: off)")
    value_coef: float = _f(0.5, "PPO: value loss coefficient")
    entropy_coef: float = _f(0.01, "PPO: entropy bonus coefficient")
    gae_lambda: float = _f(0.95, "PPO: GAE lambda")
    normalize_advantages: bool = _f(True, "PPO: normalize advantages per minibatch")
    # DQN
    buffer_size: int = _f(500_000, "DQN: replay capacity in frames (Rainbow in RL-DARTS: 500k)")
    batch_size: int = _f(256, "DQN: transitions per update")
    n_step: int = _f(7, "DQN: n of the n-step return")
    dueling: bool = _f(True, "DQN: dueling head")
    target_update: int = _f(2000, "DQN: updates between target-network copies")
    learning_starts: int = _f(20_000, "DQN: frames collected before the first update")
    updates_per_iteration: int = _f(1, "DQN: updates after each iteration's --rollout-steps steps of all copies")
    epsilon_start: float = _f(1.0, "DQN: exploration epsilon at the start")
    epsilon_end: float = _f(0.01, "DQN: epsilon after --epsilon-frames")
    epsilon_frames: int = _f(250_000, "DQN: frames over which epsilon falls linearly")
    eval_epsilon: float = _f(0.001, "DQN: epsilon when evaluating")
    # run
    eval_every: int = _f(0, "iterations between evaluations on test levels during the run (0: only at the end)")
    eval_episodes: int = _f(64, "episodes per evaluation (one per environment copy)")
    eval_max_steps: int = _f(10_000, "an evaluation stops after this many steps (episodes still running count "
                             "their return so far and are reported as unfinished)")
    derive_every: int = _f(1, "rl search: iterations between derived genotypes in the metrics")
    seed: int = _f(0, "random seed (weights, actions, environments)")
    device: str = _f("auto", "cpu, cuda, cuda:N or auto")
    threads: int = _f(0, "CPU threads (0: PyTorch's default)")
    progress: bool = _f(True, "progress bar on terminals")
    out: str = _f("", "run directory (default runs/<preset or command>-<time>)")

    WHAT = "an RL"
    POSITIVE = ("num_envs", "frames", "rollout_steps", "ppo_epochs", "minibatch_size", "buffer_size", "batch_size",
                "n_step", "target_update", "updates_per_iteration", "eval_episodes", "eval_max_steps", "derive_every", "lr")

    def depth_list(self) -> tuple[int, ...]:
        try:
            depths = tuple(int(d) for d in str(self.depths).split(","))
        except ValueError:
            raise DartsNasError(f"--depths {self.depths!r}: expected channel counts like 16,32,32") from None
        if not depths or min(depths) < 1:
            raise DartsNasError(f"--depths {self.depths!r}: expected positive channel counts like 16,32,32")
        return depths

    @property
    def frames_per_iteration(self) -> int:
        return self.num_envs * self.rollout_steps

    @property
    def epochs(self) -> int:
        """Iterations of the run (a rollout and its update each): --frames over the frames per iteration."""
        return max(1, -(-self.frames // self.frames_per_iteration))

    def problems(self) -> list[str]:
        from .envs import env_problems

        p = self.generic_problems() + env_problems(self.env)
        if self.encoder == "cell" and not self.genotype:
            p.append("--encoder cell needs --genotype (an RL search run directory or RLCell(...) text)")
        if self.genotype and self.encoder != "cell":
            p.append("--genotype trains a fixed cell: it goes with --encoder cell")
        if not 0 < self.gamma <= 1:
            p.append("--gamma must be in (0, 1]")
        if self.algo == "dqn" and self.buffer_size // self.num_envs < self.n_step + 2:
            p.append("--buffer-size must hold at least --n-step + 2 steps of every environment copy")
        try:
            self.depth_list()
        except DartsNasError as e:
            p.append(str(e))
        return p

    def validate(self) -> None:
        problems = self.problems()
        if problems:
            raise DartsNasError("; ".join(problems))


_PPO = dict(algo="ppo", num_envs=64, rollout_steps=1024, minibatch_size=2048, ppo_epochs=2, lr=5e-4, adam_eps=1e-5,
            entropy_coef=0.01, clip=0.2, value_clip=0.2, value_coef=0.5, grad_clip=0.5, gae_lambda=0.95, gamma=0.999,
            distribution_mode="easy", num_levels=200, frames=25_000_000)
_RAINBOW = dict(algo="dqn", lr=5e-5, batch_size=256, n_step=7, gamma=0.99, buffer_size=500_000, dueling=True,
                distribution_mode="easy", num_levels=200, frames=25_000_000)
_CORRIDOR = dict(env="corridor", num_levels=8, num_envs=16, rollout_steps=32, minibatch_size=128, ppo_epochs=4,
                 lr=2e-3, gamma=0.9, depths="4,8,8", frames=8192, eval_episodes=16, entropy_coef=0.01)

RL_PRESETS: dict[str, Preset] = {
    "rl-darts-ppo-procgen": Preset("RL-DARTS' PPO search on Procgen (easy, 200 levels, 64 actors, 1024-step "
                                   "rollouts, the authors' PPO values, authors' op set); 25M frames", dict(_PPO)),
    "rl-darts-rainbow-procgen": Preset("RL-DARTS' off-policy search with this package's DQN-family learner "
                                       "(double, dueling, 7-step, uniform replay 500k; the authors' Rainbow adds "
                                       "C51 and prioritized replay); 25M frames", dict(_RAINBOW)),
    "rl-impala-ppo-procgen": Preset("the IMPALA-CNN baseline agent with the same PPO values", dict(_PPO, encoder="impala")),
    "rl-demo": Preset("a small supernet PPO agent on the corridor task (8k frames, under a minute on 2 CPU cores)", dict(_CORRIDOR)),
}


def rl_config(name: str | None, config_file, command: str, **overrides) -> RLConfig:
    """The settings of `darts-nas rl search|train`: a preset, a run's config.json and flags, in that order. A
    search runs the supernet encoder; a training run a fixed encoder, the genotype's cell when one is given and
    IMPALA-CNN otherwise."""
    from .. import distributed
    from ..config import read_config_file

    if distributed.launched():
        raise DartsNasError("RL runs are single-process (their environments step on this process); run darts-nas "
                            "rl without torchrun")
    values = {}
    if name is not None and config_file is not None:
        raise DartsNasError("give a preset or a --config file to start from, not both")
    if name is not None:
        if name not in RL_PRESETS:
            raise DartsNasError(f"unknown preset {name!r} (known: {', '.join(RL_PRESETS)})")
        values.update(RL_PRESETS[name].values)
    if config_file is not None:
        values.update(read_config_file(config_file, RLConfig))
    values.update(overrides)
    if command == "rl search":
        values.setdefault("encoder", "darts")
        if values["encoder"] != "darts":
            raise DartsNasError(f"rl search runs the supernet encoder (darts); for --encoder {values['encoder']} "
                                "use darts-nas rl train")
    else:
        if values.get("encoder", "darts") == "darts" and "encoder" not in overrides:
            values["encoder"] = "cell" if values.get("genotype") else "impala"
        if values["encoder"] == "darts":
            raise DartsNasError("rl train trains a fixed encoder (impala, or cell with --genotype); the supernet "
                                "agent is darts-nas rl search")
    return RLConfig.from_dict(values)
