"""Schedules for the gradient-reversal coefficient λ.

Ganin et al., *Domain-Adversarial Training of Neural Networks*, JMLR 2016, §5.2.2: the
adaptation factor is raised from 0 to 1 so the discriminator's noisy early signal does
not wreck the features,

.. math::

    λ(p) = \\frac{2}{1 + \\exp(-γ p)} - 1, \\qquad p = \\frac{\\text{step}}{\\text{max steps}} \\in [0, 1]

with γ = 10. ``constant`` keeps λ fixed (useful for ablations and continued adaptation).
"""

from __future__ import annotations

import math

GRL_SCHEDULES = ("dann", "constant")


def grl_lambda(
    step: int,
    max_steps: int,
    *,
    schedule: str = "dann",
    gamma: float = 10.0,
    max_lambda: float = 1.0,
) -> float:
    """λ at ``step`` of a run of ``max_steps`` optimizer steps.

    Args:
        step: the global optimizer step (``TrainerState.global_step``).
        max_steps: the real length of the run (``TrainerState.max_steps``).
        schedule: ``"dann"`` (the sigmoid ramp above) or ``"constant"``.
        gamma: steepness γ of the ramp.
        max_lambda: the value λ tends to (the ramp is scaled by it).
    """
    if schedule == "constant":
        return float(max_lambda)
    if schedule != "dann":
        raise ValueError(f"Unknown GRL schedule {schedule!r}; choose one of {GRL_SCHEDULES}.")
    if max_steps <= 0:
        raise ValueError(f"max_steps must be positive to compute the λ schedule, got {max_steps}.")
    progress = min(max(step / max_steps, 0.0), 1.0)
    return float(max_lambda) * (2.0 / (1.0 + math.exp(-gamma * progress)) - 1.0)
