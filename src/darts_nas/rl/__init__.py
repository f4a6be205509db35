"""RL-DARTS (Miao et al., arXiv:2106.02229): a DARTS supernet as the image encoder of reinforcement-learning
agents on Procgen, trained end to end by the RL loss, acting in the environments itself; then the derived cell's
fixed encoder trained from scratch, against the IMPALA-CNN baseline.

- :mod:`.envs`: vectorized environments (Procgen through the ``rl`` extra; a small deterministic corridor task);
- :mod:`.encoders`: IMPALA-CNN, the supernet and the fixed-cell encoder (:data:`ENCODERS`);
- :mod:`.ppo` and :mod:`.dqn`: the on-policy and off-policy learners (:data:`LEARNERS`);
- :mod:`.run`: ``darts-nas rl search|train|evaluate``'s run loop, checkpoints and evaluation.
"""

from __future__ import annotations

from ..errors import DartsNasError
from .dqn import DQN
from .learner import Learner
from .ppo import PPO

LEARNERS: dict[str, type[Learner]] = {}


def register_learner(cls: type[Learner]) -> type[Learner]:
    if not (isinstance(cls, type) and issubclass(cls, Learner)) or not cls.name:
        raise DartsNasError(f"register_learner: {cls!r} is not a Learner subclass with a name")
    LEARNERS[cls.name] = cls
    return cls


for _cls in (PPO, DQN):
    register_learner(_cls)

__all__ = ["DQN", "LEARNERS", "Learner", "PPO", "register_learner"]
