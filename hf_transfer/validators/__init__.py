"""Label-free validators: score a trained candidate on the unlabelled target, and pick among candidates.

One module per validator, each with its paper and maths. Each single validator reads a
:class:`ValidationInputs` (target logits/features, the source's held-out logits/features/labels —
never a target label) and declares ``name``, ``higher_is_better`` and the fields it ``required``.
The Trainer logs a validator as ``eval_target_<name>`` (:func:`metric_key`), so::

    TrainingArguments(
        ...,
        metric_for_best_model=metric_key("snd"),  # "eval_target_snd"
        greater_is_better=greater_is_better("snd"),  # True
        load_best_model_at_end=True,
    )

selects checkpoints without target labels. The ``ensemble`` and ``ensv`` compare candidates with each
other (:meth:`EnsembleValidator.select` on a table of their scores, :meth:`PredictionEnsembleValidator.select`
on their target predictions) and are not per-evaluation metrics (:func:`compares_candidates`).

==================  ===========================  =========================================
name                module                       better
==================  ===========================  =========================================
``source_accuracy`` :mod:`.source_accuracy`      higher
``entropy``         :mod:`.entropy`              lower (mean entropy, nats)
``im``              :mod:`.im`                   lower (conditional − marginal entropy)
``bnm``             :mod:`.bnm`                  higher
``snd``             :mod:`.snd`                  higher
``dev``             :mod:`.dev`                  lower (a risk)
``class_ami``       :mod:`.class_ami`            higher
``ensemble``        :mod:`.ensemble`             lower (mean rank)
``ensv``            :mod:`.ensv`                 higher (agreement with all candidates)
==================  ===========================  =========================================
"""

from __future__ import annotations

from collections.abc import Iterable

from .base import ValidationInputs, Validator
from .bnm import BatchNuclearNorm
from .class_ami import ClassAMI
from .dev import DeepEmbeddedValidation, dev_risk
from .ensemble import EnsembleResult, EnsembleValidator, validator_name
from .ensv import PredictionEnsembleResult, PredictionEnsembleValidator
from .entropy import Entropy
from .im import InformationMaximization
from .snd import SoftNeighborhoodDensity
from .singles import SINGLE_VALIDATORS
from .source_accuracy import SourceAccuracy

#: name -> the validator with its paper's defaults (seed 0 where it has one); the ensemble ranks the others.
VALIDATORS: dict[str, Validator | EnsembleValidator | PredictionEnsembleValidator] = {
    **SINGLE_VALIDATORS, "ensemble": EnsembleValidator(), "ensv": PredictionEnsembleValidator(),
}

METRIC_PREFIX = "eval_target_"


def compares_candidates(validator: object) -> bool:
    """Whether ``validator`` picks by comparing finished candidates (the rank ensemble, EnsV), rather than scoring
    one evaluation: such a validator cannot be logged per evaluation nor be a member of the rank ensemble."""
    return isinstance(validator, (EnsembleValidator, PredictionEnsembleValidator))


def get_validator(name: str) -> Validator | EnsembleValidator | PredictionEnsembleValidator:
    """The registered validator called ``name``; an unknown name is an error that lists the known ones."""
    try:
        return VALIDATORS[name]
    except (KeyError, TypeError):
        raise ValueError(f"Unknown validator {name!r}; the known validators are {sorted(VALIDATORS)}.") from None


def metric_key(name: str) -> str:
    """``"snd"`` -> ``"eval_target_snd"``: the key the Trainer logs, for ``metric_for_best_model``."""
    get_validator(name)  # a typo fails here, not after a whole training run
    return f"{METRIC_PREFIX}{name}"


def greater_is_better(metric_name: str) -> bool:
    """``TrainingArguments.greater_is_better`` for a validator, named bare or as its metric key.

    ``"snd"``, ``"target_snd"`` and ``"eval_target_snd"`` all give ``True``; ``"entropy"`` gives
    ``False``. The ensemble is refused: it is never logged per evaluation, so it cannot be
    ``metric_for_best_model``.
    """
    validator = get_validator(validator_name(metric_name))
    if compares_candidates(validator):
        raise ValueError(
            f"{validator.name!r} compares finished candidates with each other and is not logged per evaluation, "
            "so it cannot be metric_for_best_model; choose a single validator there."
        )
    return validator.higher_is_better


def compute_validators(
    validators: Iterable[str | Validator], inputs: ValidationInputs
) -> dict[str, float]:
    """Score ``inputs`` with each validator: ``{"target_<name>": score}`` (the Trainer adds ``eval_``)."""
    scores: dict[str, float] = {}
    for item in validators:
        validator = get_validator(item) if isinstance(item, str) else item
        if compares_candidates(validator):
            raise ValueError(
                f"{validator.name!r} needs every candidate's results; compute the single validators here and call "
                "its select() on the candidates (EnsembleValidator on their scores, EnsV on their predictions)."
            )
        scores[f"target_{validator.name}"] = validator(inputs)
    return scores


__all__ = [
    "VALIDATORS",
    "METRIC_PREFIX",
    "BatchNuclearNorm",
    "ClassAMI",
    "DeepEmbeddedValidation",
    "EnsembleResult",
    "EnsembleValidator",
    "Entropy",
    "InformationMaximization",
    "PredictionEnsembleResult",
    "PredictionEnsembleValidator",
    "SoftNeighborhoodDensity",
    "SourceAccuracy",
    "ValidationInputs",
    "Validator",
    "compares_candidates",
    "compute_validators",
    "dev_risk",
    "get_validator",
    "greater_is_better",
    "metric_key",
    "validator_name",
]
