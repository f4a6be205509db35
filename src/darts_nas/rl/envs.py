"""Vectorized environments for the RL agents, one class each, registered once by name.

Every environment steps ``num_envs`` copies together and resets a finished copy by itself (as Procgen does):

- ``reset() -> obs`` and ``step(actions) -> (obs, reward, done)``: obs a uint8 tensor [N, H, W, 3] (what the
  encoders read), reward float32 [N], done bool [N] (the episode of that copy ended with this step; its obs is
  already the next episode's first);
- ``num_actions``, ``obs_shape`` (H, W, 3);
- ``get_state() / set_state(state)``: everything that decides the future (tensors and plain values), so that a
  resumed run steps the same episodes.

``procgen:<game>`` is a Procgen game (the ``rl`` extra: ``pip install 'darts-nas[rl]'``); ``corridor`` is a small
deterministic task of our own for tests and the demo: a row of cells, the agent starts in the middle and a coloured
mark at one end says which end pays 1 (the other ends the episode with 0). The level (a seed) picks the mark's end
and the agent's start; levels [start_level, start_level + num_levels) are the training levels, ``num_levels 0``
all levels.
"""

from __future__ import annotations

import contextlib
import io

import numpy as np
import torch

from ..errors import DartsNasError, registry_lookup

PROCGEN_GAMES = ("bigfish", "bossfight", "caveflyer", "chaser", "climber", "coinrun", "dodgeball", "fruitbot",
                 "heist", "jumper", "leaper", "maze", "miner", "ninja", "plunder", "starpilot")


def import_procgen():
    """procgen's env class, or one clear message when the extra is missing. Gym's import-time notice about its
    own maintenance is not ours to print."""
    try:
        with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
            from procgen import ProcgenGym3Env
    except ImportError:
        raise DartsNasError("Procgen environments need the rl extra: pip install 'darts-nas[rl]' (it installs "
                            "procgen-mirror)") from None
    return ProcgenGym3Env


class ProcgenEnv:
    """A Procgen game through its gym3 interface (64x64 RGB frames, 15 actions)."""

    def __init__(self, game: str, num_envs: int, seed: int, distribution_mode: str = "easy", num_levels: int = 200,
                 start_level: int = 0):
        if game not in PROCGEN_GAMES:
            raise DartsNasError(f"unknown Procgen game {game!r} (known: {', '.join(PROCGEN_GAMES)})")
        cls = import_procgen()
        self.env = cls(num=num_envs, env_name=game, distribution_mode=distribution_mode, num_levels=num_levels,
                       start_level=start_level, rand_seed=seed)
        self.num_envs = num_envs
        self.num_actions = int(self.env.ac_space.eltype.n)
        self.obs_shape = tuple(self.env.ob_space["rgb"].shape)

    def _obs(self) -> torch.Tensor:
        _, obs, _ = self.env.observe()
        return torch.from_numpy(np.ascontiguousarray(obs["rgb"]))

    def reset(self) -> torch.Tensor:
        return self._obs()

    def step(self, actions: torch.Tensor):
        self.env.act(actions.to("cpu", torch.int32).numpy())
        reward, obs, first = self.env.observe()
        return (torch.from_numpy(np.ascontiguousarray(obs["rgb"])), torch.from_numpy(reward.astype(np.float32)),
                torch.from_numpy(first.astype(bool)))

    def get_state(self) -> dict:
        return {"procgen": [torch.frombuffer(bytearray(s), dtype=torch.uint8) for s in
                            self.env.callmethod("get_state")]}

    def set_state(self, state: dict) -> None:
        self.env.callmethod("set_state", [bytes(t.numpy().tobytes()) for t in state["procgen"]])


class CorridorEnv:
    """A deterministic corridor of `length` cells drawn as a 3 x `size` x `size` image (the agent white, the
    paying end's mark green on the top row). Actions: 0 left, 1 right, 2 stay. Reward 1 on reaching the marked
    end, 0 at the other end or after `max_steps`."""

    def __init__(self, num_envs: int, seed: int, num_levels: int = 0, start_level: int = 0, length: int = 7,
                 size: int = 16, max_steps: int = 20):
        if length < 3 or length > size:
            raise DartsNasError(f"corridor: length must be 3..{size}")
        self.num_envs, self.length, self.size, self.max_steps = num_envs, length, size, max_steps
        self.num_actions = 3
        self.obs_shape = (size, size, 3)
        self.num_levels, self.start_level = num_levels, start_level
        self.rng = np.random.RandomState(seed)
        self.goal = np.zeros(num_envs, np.int64)
        self.pos = np.zeros(num_envs, np.int64)
        self.t = np.zeros(num_envs, np.int64)
        for e in range(num_envs):
            self._new_episode(e)

    def _new_episode(self, e: int) -> None:
        level = self.start_level + (self.rng.randint(self.num_levels) if self.num_levels else self.rng.randint(2 ** 30))
        lr = np.random.RandomState(level)
        self.goal[e] = int(lr.randint(2))  # 0: the left end pays, 1: the right end
        self.pos[e] = self.length // 2 + int(lr.randint(-1, 2))
        self.t[e] = 0

    def _render(self) -> torch.Tensor:
        img = np.zeros((self.num_envs, self.size, self.size, 3), np.uint8)
        row = self.size // 2
        img[:, row, : self.length, 2] = 60  # the corridor
        idx = np.arange(self.num_envs)
        img[idx, row, self.pos] = 255
        img[idx, 0, np.where(self.goal == 1, self.length - 1, 0), 1] = 255
        return torch.from_numpy(img)

    def reset(self) -> torch.Tensor:
        return self._render()

    def step(self, actions: torch.Tensor):
        a = actions.to("cpu").numpy()
        self.pos = np.clip(self.pos + np.where(a == 0, -1, np.where(a == 1, 1, 0)), 0, self.length - 1)
        self.t += 1
        at_left, at_right = self.pos == 0, self.pos == self.length - 1
        reward = np.where((at_left & (self.goal == 0)) | (at_right & (self.goal == 1)), 1.0, 0.0).astype(np.float32)
        done = at_left | at_right | (self.t >= self.max_steps)
        for e in np.flatnonzero(done):
            self._new_episode(int(e))
        return self._render(), torch.from_numpy(reward), torch.from_numpy(done)

    def get_state(self) -> dict:
        kind, keys, pos, has_gauss, cached = self.rng.get_state()
        return {"goal": torch.from_numpy(self.goal.copy()), "pos": torch.from_numpy(self.pos.copy()),
                "t": torch.from_numpy(self.t.copy()), "rng_keys": torch.from_numpy(keys.astype(np.int64)),
                "rng_pos": int(pos), "rng_gauss": (int(has_gauss), float(cached))}

    def set_state(self, state: dict) -> None:
        self.goal, self.pos, self.t = (state[k].numpy().copy() for k in ("goal", "pos", "t"))
        self.rng.set_state(("MT19937", state["rng_keys"].numpy().astype(np.uint32), state["rng_pos"],
                            state["rng_gauss"][0], state["rng_gauss"][1]))


def make_env(spec: str, num_envs: int, seed: int, distribution_mode: str = "easy", num_levels: int = 200,
             start_level: int = 0):
    """An environment from its name: ``procgen:<game>`` or one of ENVS."""
    if num_envs < 1:
        raise DartsNasError("--num-envs must be positive")
    if spec.startswith("procgen:"):
        return ProcgenEnv(spec.split(":", 1)[1], num_envs, seed, distribution_mode, num_levels, start_level)
    cls = registry_lookup(ENVS, spec, "environment (or procgen:<game>)")
    return cls(num_envs, seed, num_levels=num_levels, start_level=start_level)


def env_problems(spec: str) -> list[str]:
    if spec.startswith("procgen:"):
        game = spec.split(":", 1)[1]
        return [] if game in PROCGEN_GAMES else [f"--env: unknown Procgen game {game!r} (known: "
                                                 f"{', '.join(PROCGEN_GAMES)})"]
    return [] if spec in ENVS else [f"--env must be procgen:<game> or one of {', '.join(ENVS)}"]


ENVS: dict[str, type] = {"corridor": CorridorEnv}
