"""Ensemble of validators by rank averaging: pick the candidate that is good by most measures.

No single label-free validator reliably avoids a bad pick: Hu et al., *Towards Reliable Model
Selection for Unsupervised Domain Adaptation: An Empirical Study and A Certified Baseline*
(EnsV), NeurIPS 2024 Datasets & Benchmarks, find that none of 8 validators avoids the worst
candidate on every task, while an ensemble does. EnsV itself ensembles the *candidates'
predictions* into a pseudo-labeller; this module ensembles the *validators*, by averaging each
candidate's rank across them (a Borda count), so that validators on different scales (nats, a
nuclear norm, a risk, an AMI) and with opposite directions can be combined without tuning.

For candidates :math:`c \\in C` and validators :math:`v \\in V`, let :math:`r_v(c) \\in
\\{1, \\dots, |C|\\}` be the rank of :math:`c` under :math:`v` — 1 for its best score in
:math:`v`'s own direction, ties sharing their average rank, and a missing (NaN) score ranked
last. Then

.. math::

    \\mathrm{Ens}(c) = \\frac{1}{|V|} \\sum_{v \\in V} r_v(c), \\qquad
    \\hat c = \\arg\\min_{c} \\mathrm{Ens}(c).

**Lower is better** (a mean rank). Ties in :math:`\\mathrm{Ens}` go to the candidate listed
first, so the pick is deterministic. The ensemble compares candidates with one another, so
unlike the other validators it is not computed on one evaluation pass and is not logged as an
``eval_target_*`` metric: a sweep collects each candidate's validator scores into a table and
calls :meth:`EnsembleValidator.select`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import rankdata

from .base import Validator
from .singles import SINGLE_VALIDATORS

#: A table of scores: candidate name -> {validator name (or its metric key) -> score, other columns}.
ScoreTable = Mapping[str, Mapping[str, Any]]


@dataclass(frozen=True)
class EnsembleResult:
    """What :meth:`EnsembleValidator.select` found: the pick, every mean rank, and the ranks behind it."""

    pick: str
    #: candidate -> mean rank across the validators (1 = best everywhere); lower is better.
    scores: dict[str, float]
    #: validator -> candidate -> rank under that validator (1 = best).
    ranks: dict[str, dict[str, float]]
    #: the validators the ranks were averaged over, in order.
    validators: tuple[str, ...]


def validator_name(key: str) -> str:
    """``"eval_target_snd"`` and ``"target_snd"`` name the validator ``"snd"``; other keys are kept.

    Only these two prefixes are stripped, so the Trainer's labelled ``eval_source_accuracy`` is
    not mistaken for the ``source_accuracy`` validator (logged as ``eval_target_source_accuracy``).
    """
    for prefix in ("eval_target_", "target_"):
        if key.startswith(prefix):
            return key[len(prefix) :]
    return key


class EnsembleValidator:
    """Average each candidate's rank across several validators, each in its own direction."""

    name = "ensemble"
    higher_is_better = False

    def __init__(self, validators: Sequence[str | Validator] | None = None) -> None:
        """``validators``: the members (names or objects); ``None`` uses every known validator in the table."""
        self.validators: tuple[Validator, ...] | None = (
            None if validators is None else tuple(_resolve(v) for v in validators)
        )
        if self.validators is not None:
            if not self.validators:
                raise ValueError("An ensemble needs at least one validator.")
            names = [v.name for v in self.validators]
            if len(set(names)) != len(names):
                raise ValueError(f"The ensemble names a validator twice: {names}.")

    def prefers(self, score: float, other: float) -> bool:
        """Whether mean rank ``score`` is strictly better (lower) than ``other``."""
        return score < other

    def select(self, table: ScoreTable) -> EnsembleResult:
        """Rank every candidate of ``table`` under each member validator, average, and pick the best.

        Columns that name no member validator (an oracle target accuracy, a loss, a note) are
        ignored, so they can sit in the same table without ever steering the pick.
        """
        if not table:
            raise ValueError("The ensemble needs at least one candidate; the score table is empty.")
        candidates = list(table)
        members = self.validators if self.validators is not None else _members_in(table)
        wanted = {v.name for v in members}
        rows = {c: _row_by_validator(c, table[c], wanted) for c in candidates}
        ranks: dict[str, dict[str, float]] = {}
        for validator in members:
            missing = [c for c in candidates if validator.name not in rows[c]]
            if missing:
                raise ValueError(
                    f"Candidate {missing[0]!r} has no {validator.name!r} score "
                    f"(as {validator.name!r}, 'target_{validator.name}' or 'eval_target_{validator.name}')."
                )
            values = np.asarray([rows[c][validator.name] for c in candidates], dtype=np.float64)
            ranks[validator.name] = dict(zip(candidates, (float(r) for r in _ranks(values, validator))))
        scores = {c: float(np.mean([ranks[v.name][c] for v in members])) for c in candidates}
        pick = min(candidates, key=lambda c: scores[c])  # min keeps the first of equal scores
        return EnsembleResult(pick=pick, scores=scores, ranks=ranks, validators=tuple(v.name for v in members))

    def __repr__(self) -> str:
        members = "all in the table" if self.validators is None else [v.name for v in self.validators]
        return f"EnsembleValidator(validators={members}, lower mean rank is better)"


def _resolve(validator: str | Validator) -> Validator:
    if isinstance(validator, str):
        if validator == EnsembleValidator.name:
            raise ValueError("An ensemble's members are single validators, not another ensemble.")
        if validator not in SINGLE_VALIDATORS:
            known = sorted([*SINGLE_VALIDATORS, EnsembleValidator.name])
            raise ValueError(f"Unknown validator {validator!r}; the known validators are {known}.")
        return SINGLE_VALIDATORS[validator]
    resolved = validator
    if not isinstance(resolved, Validator):
        raise ValueError(f"An ensemble's members are single validators, not {resolved!r}.")
    return resolved


def _members_in(table: ScoreTable) -> tuple[Validator, ...]:
    """Every known single validator that scored at least one candidate of the table, in registry order."""
    present = {validator_name(key) for row in table.values() for key in row}
    members = tuple(v for name, v in SINGLE_VALIDATORS.items() if name in present)
    if not members:
        known = sorted(SINGLE_VALIDATORS)
        raise ValueError(f"The score table holds no known validator's scores; the known ones are {known}.")
    return members


def _row_by_validator(candidate: str, row: Mapping[str, Any], wanted: set[str]) -> dict[str, float]:
    """One candidate's scores for the wanted validators, keyed by name whatever prefix the keys carried."""
    out: dict[str, float] = {}
    for key, value in row.items():
        name = validator_name(key)
        if name not in wanted:
            continue
        if name in out:
            raise ValueError(f"Candidate {candidate!r} gives the {name!r} score under two keys.")
        out[name] = math.nan if value is None else float(value)
    return out


def _ranks(values: np.ndarray, validator: Validator) -> np.ndarray:
    """1 for the best value in the validator's direction, average ranks for ties, NaN ranked last."""
    goodness = values if validator.higher_is_better else -values
    goodness = np.where(np.isnan(goodness), -np.inf, goodness)
    return rankdata(-goodness, method="average")
