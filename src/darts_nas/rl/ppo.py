"""PPO (Schulman et al., arXiv:1707.06347) with generalized advantage estimation (GAE, arXiv:1506.02438): the
on-policy learner of RL-DARTS. The agent is an actor-critic on any encoder; the supernet's alphas learn from the
same loss (jointly, in the weights' Adam, as in the authors' code) or in alternate minibatches with their own Adam.

The loss of a minibatch, with the value term as TF-Agents' PPO computes it (the authors' agents are TF-Agents'):

    ratio = exp(log pi(a|s) - log pi_old(a|s)),  A normalized over the minibatch
    L_pi = mean(max(-A ratio, -A clip(ratio, 1 - eps, 1 + eps)))
    L_V  = mean(max((V - R)^2, (V_old + clip(V - V_old, -eps_v, eps_v) - R)^2))
    L    = L_pi + c_V L_V - c_H mean(entropy)

(OpenAI Baselines' ppo2 halves L_V once more, so its value coefficient 0.5 weighs the value term half as much.)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .learner import Learner


def _torchrl_gae():
    """TorchRL's generalized advantage estimate (the rl extra), imported once; gym's import-time notice, which
    TorchRL triggers when gym is installed, is not ours to print."""
    import contextlib
    import io

    from ..errors import DartsNasError

    try:
        with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
            from torchrl.objectives.value.functional import generalized_advantage_estimate
    except ImportError:
        raise DartsNasError("PPO needs the rl extra: pip install 'darts-nas[rl]' (it installs torchrl)") from None
    return generalized_advantage_estimate


def gae(rewards: torch.Tensor, values: torch.Tensor, dones: torch.Tensor, last_value: torch.Tensor, gamma: float,
        lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Advantages and returns of a rollout: rewards, values, dones [T, N] (done[t]: the episode ended with step
    t, so step t + 1 starts another), last_value [N] the value of the state after the last step.
    delta_t = r_t + gamma V_{t+1} (1 - d_t) - V_t;  A_t = delta_t + gamma lam (1 - d_t) A_{t+1};  R = A + V.
    Computed by TorchRL's estimator (each copy a batch row, time along dim -2); an episode end is terminal."""
    estimate = _torchrl_gae()
    next_values = torch.cat([values[1:], last_value[None]], 0)
    as_rows = lambda x: x.t().unsqueeze(-1)  # [T, N] -> [N, T, 1]
    done = as_rows(dones.bool())
    adv, ret = estimate(gamma, lam, as_rows(values), as_rows(next_values), as_rows(rewards), done, done,
                        time_dim=-2)
    return adv.squeeze(-1).t(), ret.squeeze(-1).t()


def ppo_loss(logits: torch.Tensor, values: torch.Tensor, actions: torch.Tensor, old_logp: torch.Tensor,
             old_values: torch.Tensor, advantages: torch.Tensor, returns: torch.Tensor, clip: float,
             value_clip: float, value_coef: float, entropy_coef: float, normalize: bool = True) -> dict:
    """The PPO loss of one minibatch and its parts (tensors)."""
    logp_all = F.log_softmax(logits, dim=-1)
    logp = logp_all.gather(1, actions[:, None]).squeeze(1)
    entropy = -(logp_all.exp() * logp_all).sum(-1).mean()
    if normalize:
        advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
    ratio = torch.exp(logp - old_logp)
    policy = torch.max(-advantages * ratio, -advantages * ratio.clamp(1 - clip, 1 + clip)).mean()
    if value_clip > 0:
        clipped = old_values + (values - old_values).clamp(-value_clip, value_clip)
        value = torch.max((values - returns) ** 2, (clipped - returns) ** 2).mean()
    else:
        value = ((values - returns) ** 2).mean()
    loss = policy + value_coef * value - entropy_coef * entropy
    clipped_frac = ((ratio - 1).abs() > clip).float().mean()
    return {"loss": loss, "policy_loss": policy, "value_loss": value, "entropy": entropy, "clip_frac": clipped_frac}


class ActorCritic(nn.Module):
    """Policy logits and value from one encoder's features."""

    def __init__(self, encoder: nn.Module, num_actions: int):
        super().__init__()
        self.encoder = encoder
        self.policy = nn.Linear(encoder.linear.out_features, num_actions)
        self.value = nn.Linear(encoder.linear.out_features, 1)
        nn.init.orthogonal_(self.policy.weight, 0.01)
        nn.init.zeros_(self.policy.bias)

    def forward(self, obs):
        h = self.encoder(obs)
        return self.policy(h), self.value(h).squeeze(-1)


class PPO(Learner):
    name = "ppo"

    def build(self, encoder, num_actions):
        return ActorCritic(encoder, num_actions)

    def start(self, obs_shape):
        c, T, N = self.config, self.config.rollout_steps, self.config.num_envs
        dev = self.device
        self.buf = {"obs": torch.zeros((T, N, *obs_shape), dtype=torch.uint8, device=dev),
                    "actions": torch.zeros((T, N), dtype=torch.long, device=dev),
                    "logp": torch.zeros((T, N), device=dev), "values": torch.zeros((T, N), device=dev),
                    "rewards": torch.zeros((T, N), device=dev), "dones": torch.zeros((T, N), dtype=torch.bool, device=dev)}
        self.minibatch = min(c.minibatch_size, T * N)

    @torch.no_grad()
    def act(self, obs, evaluate: bool = False):
        logits, value = self.agent(obs)
        probs = torch.softmax(logits, -1)
        action = torch.multinomial(probs, 1, generator=self.generator).squeeze(1)
        logp = torch.log_softmax(logits, -1).gather(1, action[:, None]).squeeze(1)
        return action, {"logp": logp, "value": value}

    def record(self, t, obs, action, extra, reward, done):
        b = self.buf
        b["obs"][t] = obs
        b["actions"][t] = action
        b["logp"][t] = extra["logp"]
        b["values"][t] = extra["value"]
        b["rewards"][t] = reward
        b["dones"][t] = done

    def update(self, last_obs) -> dict:
        c, b = self.config, self.buf
        with torch.no_grad():
            _, last_value = self.agent(last_obs)
        adv, ret = gae(b["rewards"], b["values"], b["dones"], last_value, c.gamma, c.gae_lambda)
        flat = {"obs": b["obs"].flatten(0, 1), "actions": b["actions"].flatten(), "logp": b["logp"].flatten(),
                "values": b["values"].flatten(), "adv": adv.flatten(), "ret": ret.flatten()}
        n = flat["actions"].shape[0]
        sums, count = {}, 0
        for _ in range(c.ppo_epochs):
            perm = torch.randperm(n, generator=self.generator, device="cpu").to(self.device)
            for start in range(0, n - self.minibatch + 1, self.minibatch):
                idx = perm[start:start + self.minibatch]
                logits, values = self.agent(flat["obs"][idx])
                parts = ppo_loss(logits, values, flat["actions"][idx], flat["logp"][idx], flat["values"][idx],
                                 flat["adv"][idx], flat["ret"][idx], c.clip, c.value_clip, c.value_coef,
                                 c.entropy_coef, c.normalize_advantages)
                self.step(parts["loss"], count)
                for k, v in parts.items():
                    sums[k] = sums.get(k, 0) + v.detach()
                count += 1
        return {k: v / max(count, 1) for k, v in sums.items()}

