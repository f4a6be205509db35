"""The off-policy learner: double DQN (van Hasselt et al., arXiv:1509.06461) with a dueling head (Wang et al.,
arXiv:1511.06581), n-step returns and a uniform replay buffer, i.e. Rainbow (arXiv:1710.02298) without its
distributional (C51) head, prioritized replay and noisy nets. The supernet encoder acts through it (epsilon-greedy)
and its alphas learn from the TD loss, as RL-DARTS does with Rainbow.

For a transition at step t of one environment copy, with d the done flags:

    G = sum_{i<n} gamma^i r_{t+i} prod_{j<i} (1 - d_{t+j})
    y = G + gamma^n prod_{j<n} (1 - d_{t+j}) Q_target(s_{t+n}, argmax_a Q(s_{t+n}, a))

and the loss is the Huber loss between Q(s_t, a_t) and y.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from .learner import Learner


class QNetwork(nn.Module):
    """Q-values from an encoder's features; dueling: V(s) + A(s, a) - mean_a A(s, a)."""

    def __init__(self, encoder: nn.Module, num_actions: int, dueling: bool = True):
        super().__init__()
        self.encoder = encoder
        f = encoder.linear.out_features
        self.dueling = dueling
        self.advantage = nn.Linear(f, num_actions)
        self.value = nn.Linear(f, 1) if dueling else None

    def forward(self, obs):
        h = self.encoder(obs)
        a = self.advantage(h)
        if not self.dueling:
            return a
        return self.value(h) + a - a.mean(-1, keepdim=True)


class ReplayBuffer:
    """The last `capacity` steps of every environment copy, time-major ([capacity, N]) so that n-step returns
    read consecutive slots. Slot t holds the frame seen before step t, its action, reward and done flag."""

    def __init__(self, capacity: int, num_envs: int, obs_shape, device):
        self.capacity, self.num_envs = capacity, num_envs
        self.obs = torch.zeros((capacity, num_envs, *obs_shape), dtype=torch.uint8, device=device)
        self.actions = torch.zeros((capacity, num_envs), dtype=torch.long, device=device)
        self.rewards = torch.zeros((capacity, num_envs), device=device)
        self.dones = torch.zeros((capacity, num_envs), dtype=torch.bool, device=device)
        self.pos = 0    # next slot to write
        self.size = 0   # slots written (at most capacity)

    def add(self, obs, action, reward, done) -> None:
        self.obs[self.pos] = obs
        self.actions[self.pos] = action
        self.rewards[self.pos] = reward
        self.dones[self.pos] = done
        self.pos = (self.pos + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sampleable(self, n: int) -> int:
        """Steps whose n following slots are written (their target frame included)."""
        return max(self.size - n, 0)

    def sample(self, batch: int, n: int, gamma: float, generator) -> dict:
        """`batch` transitions, uniform over the sampleable steps of all copies: (s_t, a_t, G, s_{t+n}, the
        bootstrap factor gamma^n prod(1 - d))."""
        count = self.sampleable(n)
        oldest = (self.pos - self.size) % self.capacity
        k = torch.randint(count * self.num_envs, (batch,), generator=generator).to(self.obs.device)
        t = (oldest + k // self.num_envs) % self.capacity
        e = k % self.num_envs
        ret = torch.zeros(batch, device=self.obs.device)
        alive = torch.ones(batch, device=self.obs.device)
        for i in range(n):
            ti = (t + i) % self.capacity
            ret = ret + (gamma ** i) * alive * self.rewards[ti, e]
            alive = alive * (1.0 - self.dones[ti, e].float())
        return {"obs": self.obs[t, e], "actions": self.actions[t, e], "returns": ret,
                "next_obs": self.obs[(t + n) % self.capacity, e], "bootstrap": (gamma ** n) * alive}

    def state_dict(self) -> dict:
        return {"obs": self.obs, "actions": self.actions, "rewards": self.rewards, "dones": self.dones,
                "pos": self.pos, "size": self.size}

    def load_state_dict(self, s: dict) -> None:
        for k in ("obs", "actions", "rewards", "dones"):
            getattr(self, k).copy_(s[k])
        self.pos, self.size = s["pos"], s["size"]


def double_dqn_target(online: nn.Module, target: nn.Module, sample: dict) -> torch.Tensor:
    with torch.no_grad():
        best = online(sample["next_obs"]).argmax(-1, keepdim=True)
        q_next = target(sample["next_obs"]).gather(1, best).squeeze(1)
        return sample["returns"] + sample["bootstrap"] * q_next


class DQN(Learner):
    name = "dqn"

    def build(self, encoder, num_actions):
        self.num_actions = num_actions
        return QNetwork(encoder, num_actions, self.config.dueling)

    def start(self, obs_shape):
        c = self.config
        self.replay = ReplayBuffer(max(c.buffer_size // c.num_envs, c.n_step + 2), c.num_envs, obs_shape, self.device)
        self.target = copy.deepcopy(self.agent)
        for p in self.target.parameters():
            p.requires_grad_(False)
        self.frames = 0

    def epsilon(self) -> float:
        c = self.config
        frac = min(self.frames / max(c.epsilon_frames, 1), 1.0)
        return c.epsilon_start + frac * (c.epsilon_end - c.epsilon_start)

    @torch.no_grad()
    def act(self, obs, evaluate: bool = False):
        q = self.agent(obs)
        action = q.argmax(-1)
        eps = self.config.eval_epsilon if evaluate else self.epsilon()
        if eps > 0:
            n = obs.shape[0]
            explore = torch.rand(n, generator=self.generator) < eps
            random = torch.randint(self.num_actions, (n,), generator=self.generator)
            action = torch.where(explore.to(action.device), random.to(action.device), action)
        return action, {}

    def record(self, t, obs, action, extra, reward, done):
        self.replay.add(obs, action, reward, done)
        self.frames += obs.shape[0]

    def update(self, last_obs) -> dict:
        c = self.config
        sums, count = {}, 0
        if self.frames < c.learning_starts or self.replay.sampleable(c.n_step) == 0:
            return {}
        for _ in range(c.updates_per_iteration):
            s = self.replay.sample(c.batch_size, c.n_step, c.gamma, self.generator)
            y = double_dqn_target(self.agent, self.target, s)
            q = self.agent(s["obs"]).gather(1, s["actions"][:, None]).squeeze(1)
            loss = F.smooth_l1_loss(q, y)
            self.step(loss, count)
            count += 1
            if self.updates % c.target_update == 0:
                self.target.load_state_dict(self.agent.state_dict())
            sums["loss"] = sums.get("loss", 0) + loss.detach()
            sums["q"] = sums.get("q", 0) + q.detach().mean()
        return {k: v / count for k, v in sums.items()}

    def exploration(self) -> dict:
        return {"epsilon": self.epsilon()}

    def extra_state(self) -> dict:
        return {"target": self.target.state_dict(), "replay": self.replay.state_dict(), "frames": self.frames}

    def load_extra_state(self, state: dict) -> None:
        self.target.load_state_dict(state["target"])
        self.replay.load_state_dict(state["replay"])
        self.frames = state["frames"]
