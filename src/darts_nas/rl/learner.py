"""What the RL learners share: the agent network on an encoder, its optimizers (the alphas jointly in the weights'
Adam, or alternating with their own Adam), one optimizer step with gradient clipping, and their checkpoint state.
A learner is registered once by name (:data:`darts_nas.rl.LEARNERS`); the run loop asks it to act, record, update
and give its state, and never looks at which one it is."""

from __future__ import annotations

import torch
from torch import nn


def clip_grads(params, max_norm: float) -> None:
    if max_norm > 0:
        torch.nn.utils.clip_grad_norm_(params, max_norm)


class Learner:
    name = ""

    def __init__(self, config, encoder: nn.Module, num_actions: int, device: torch.device,
                 generator: torch.Generator):
        self.config, self.device, self.generator = config, device, generator
        self.agent = self.build(encoder, num_actions).to(device)
        arch = {id(p) for p in encoder.arch_parameters()}
        self.arch_params = [p for p in self.agent.parameters() if id(p) in arch]
        self.weight_params = [p for p in self.agent.parameters() if id(p) not in arch]
        c = config
        joint = c.arch_update == "joint" or not self.arch_params
        groups = self.weight_params + (self.arch_params if joint else [])
        self.optimizers = {"weights": torch.optim.Adam(groups, lr=c.lr, eps=c.adam_eps)}
        if not joint:
            self.optimizers["alphas"] = torch.optim.Adam(self.arch_params, lr=c.arch_lr, eps=c.adam_eps)
        self.updates = 0  # optimizer steps taken

    # -- what each learner defines -------------------------------------------------------------------------
    def build(self, encoder, num_actions) -> nn.Module:
        raise NotImplementedError

    def start(self, obs_shape) -> None:
        """Allocate what the learner keeps between steps (rollout storage, replay)."""

    def act(self, obs, evaluate: bool = False):
        """(actions, extras) for a batch of frames; extras go back to `record`. ``evaluate``: as when evaluating
        (PPO samples either way; DQN uses --eval-epsilon instead of its exploration schedule)."""
        raise NotImplementedError

    def record(self, t, obs, action, extra, reward, done) -> None:
        raise NotImplementedError

    def update(self, last_obs) -> dict:
        """Learn from what was recorded this iteration; returns the means of its terms (tensors)."""
        raise NotImplementedError

    def exploration(self) -> dict:
        return {}

    # -- shared ---------------------------------------------------------------------------------------------
    def step(self, loss: torch.Tensor, k: int) -> None:
        """One optimizer step on `loss`. Alternating mode: even minibatches move the weights, odd ones the alphas
        (each with its own Adam); joint mode: one Adam moves both."""
        for opt in self.optimizers.values():
            opt.zero_grad(set_to_none=True)
        loss.backward()
        if "alphas" in self.optimizers and k % 2 == 1:
            clip_grads(self.arch_params, self.config.grad_clip)
            self.optimizers["alphas"].step()
        else:
            params = self.weight_params + (self.arch_params if "alphas" not in self.optimizers else [])
            clip_grads(params, self.config.grad_clip)
            self.optimizers["weights"].step()
        self.updates += 1

    def state_dict(self) -> dict:
        return {"agent": self.agent.state_dict(), "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
                "updates": self.updates, **self.extra_state()}

    def load_state_dict(self, state: dict) -> None:
        self.agent.load_state_dict(state["agent"])
        for k, o in self.optimizers.items():
            o.load_state_dict(state["optimizers"][k])
        self.updates = state["updates"]
        self.load_extra_state(state)

    def extra_state(self) -> dict:
        return {}

    def load_extra_state(self, state: dict) -> None:
        pass
