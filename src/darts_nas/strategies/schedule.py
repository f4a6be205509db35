"""When the alphas step: every weight step (DARTS), every k-th, or DARTS-PRIME's dynamic schedule.

DARTS-PRIME (constrained bilevel DARTS, arXiv:2106.11655; the rule as its authors' code applies it, k8lion/DARTS-PRIME
@4953e40) takes an architecture step only when the weights have settled. The information of a minibatch is
FI = sum over the weights of the squared training-loss gradient (before clipping), smoothed as
FI_ewma <- e FI + (1 - e) FI_ewma (e = 0.2; the first value starts it). Before each weight step:

- if 0 < FI_ewma < threshold: one alpha step on the next validation batch, and threshold *= factor^(-freq);
- else threshold *= factor (factor 1.05, threshold starting at 1, freq 10),

so the threshold rises until the information falls under it, and drops sharply after each alpha step: about one
alpha step per `freq` weight steps on average, when the gradients are quiet. The weights step every batch. The
authors' split gives the alphas 1 / (1 + freq) of the training set (``--train-portion`` 10/11 in the preset).
``fixed``: an alpha step every `freq` weight steps (step k of an epoch, when (k + 1) % freq == 0).

One number is read back from the device per step (FI_ewma, for the decision). The authors' code aliases its
running value on the second step (its EWMA there equals that step's FI); here the EWMA is the formula above.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import DartsNasError
from ..settings import SettingsGroup, setting

ARCH_SCHEDULES = ("every", "fixed", "fisher")
BOUNDS_MESSAGE = ("--schedule-freq must be at least 1, --fisher-ewma in (0, 1], --fisher-threshold positive, "
                  "--threshold-factor at least 1 and --admm-every at least 1")


@dataclass
class ScheduleSettings(SettingsGroup):
    """When the alphas step, and the constants of DARTS-PRIME's Fisher-information rule."""

    arch_schedule: str = setting("every", "when the alphas step: every weight step, fixed (every --schedule-freq "
                                 "steps) or fisher (DARTS-PRIME: when the smoothed Fisher information of the weights "
                                 "falls under an adaptive threshold)", ARCH_SCHEDULES)
    schedule_freq: float = setting(10.0, "--arch-schedule fixed/fisher: weight steps per alpha step (DARTS-PRIME: "
                                   "10)")
    fisher_ewma: float = setting(0.2, "--arch-schedule fisher: smoothing weight of the newest Fisher information")
    fisher_threshold: float = setting(1.0, "--arch-schedule fisher: the threshold's start")
    threshold_factor: float = setting(1.05, "--arch-schedule fisher: the threshold grows by this per weight step "
                                      "without an alpha step and shrinks by its --schedule-freq power after one")

    @classmethod
    def problems(cls, config) -> list[str]:
        problems = cls.timing_problems(config) if config.arch_schedule != "every" else []
        if config.schedule_freq < 1 or not 0 < config.fisher_ewma <= 1 or config.fisher_threshold <= 0 or \
                config.threshold_factor < 1:
            problems.append(BOUNDS_MESSAGE)
        return problems

    @staticmethod
    def timing_problems(config) -> list[str]:
        """A schedule other than every step: it times the alpha steps of an alternating strategy, on the host."""
        from .bilevel import AlternatingStep

        problems = []
        strategy, space = config.search_strategy(), config.search_space()
        if strategy is not None and not issubclass(strategy, AlternatingStep):
            problems.append(f"--arch-schedule {config.arch_schedule} times the alpha steps of a bilevel search; "
                            f"the {config.strategy} strategy steps both on one batch")
        if config.cuda_graphs:
            problems.append("--arch-schedule decides each step on the host: no --cuda-graphs")
        if space is not None and space.data_kind != "images":
            problems.append("--arch-schedule applies to image searches")
        return problems


class ArchSchedule:
    settings_groups = (ScheduleSettings,)

    def __init__(self, kind: str = "every", freq: float = 10.0, ewma: float = 0.2, threshold: float = 1.0,
                 factor: float = 1.05):
        if kind not in ARCH_SCHEDULES:
            raise DartsNasError(f"unknown architecture schedule {kind!r} (known: {', '.join(ARCH_SCHEDULES)})")
        self.kind, self.freq, self.ewma_weight, self.factor = kind, float(freq), float(ewma), float(factor)
        self.threshold = float(threshold)
        self.fisher: torch.Tensor | None = None  # FI_ewma, on the device
        self.alpha_steps = 0   # in the current epoch

    @property
    def every_step(self) -> bool:
        return self.kind == "every"

    @property
    def needs_fisher(self) -> bool:
        return self.kind == "fisher"

    def start_epoch(self) -> None:
        self.alpha_steps = 0

    @torch.no_grad()
    def observe(self, fisher: torch.Tensor) -> None:
        """The information of the weight step just taken (a 0-dim device tensor): FI_ewma's update, on the device."""
        fisher = fisher.detach().float()
        self.fisher = fisher if self.fisher is None else self.ewma_weight * fisher + (1 - self.ewma_weight) * self.fisher

    def due(self, step: int) -> bool:
        """Whether an alpha step comes before weight step `step` of the epoch (0-based); updates the threshold."""
        if self.kind == "every":
            take = True
        elif self.kind == "fixed":
            take = (step + 1) % max(int(self.freq), 1) == 0
        else:
            value = float(self.fisher) if self.fisher is not None else -1.0  # the one read per step
            take = 0.0 < value < self.threshold
            self.threshold *= self.factor ** (-self.freq) if take else self.factor
        self.alpha_steps += int(take)
        return take

    def record(self) -> dict:
        """What the epoch's metrics show."""
        out = {"alpha_steps": self.alpha_steps}
        if self.needs_fisher:
            out.update(fisher_ewma=None if self.fisher is None else float(self.fisher), fisher_threshold=self.threshold)
        return out

    def state_dict(self) -> dict:
        return {"fisher": self.fisher, "threshold": self.threshold}

    def load_state_dict(self, state: dict | None, device) -> None:
        state = state or {}
        self.fisher = None if state.get("fisher") is None else state["fisher"].to(device)
        self.threshold = float(state.get("threshold", self.threshold))
