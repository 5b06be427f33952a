"""Alignment methods: one idea per module, each with its paper and maths in the docstring.

Each method module registers itself in :mod:`~hf_transfer.alignment.registry`; the objective
(:class:`~hf_transfer.alignment.objective.AlignmentObjective`) composes the registered terms.
"""

from .cdan import ConditionalDomainAdversarialLoss, MultilinearMap, RandomizedMultilinearMap
from .dann import DomainAdversarialLoss, DomainDiscriminator, DomainLossOutput
from .grl import GradientReversalLayer, GradientReverseFunction
from .label_shift import class_importance_weights
from .mcc import MinimumClassConfusionLoss
from .mme import MinimaxEntropyHead, PrototypeClassifier
from .objective import AlignmentObjective, ObjectiveTerm
from .registry import AlignmentMethod, available_methods, get_method, register_method
from .schedules import GRL_SCHEDULES, grl_lambda

__all__ = [
    "AlignmentMethod",
    "AlignmentObjective",
    "ConditionalDomainAdversarialLoss",
    "DomainAdversarialLoss",
    "DomainDiscriminator",
    "DomainLossOutput",
    "GRL_SCHEDULES",
    "GradientReversalLayer",
    "GradientReverseFunction",
    "MinimaxEntropyHead",
    "MinimumClassConfusionLoss",
    "MultilinearMap",
    "ObjectiveTerm",
    "PrototypeClassifier",
    "RandomizedMultilinearMap",
    "available_methods",
    "class_importance_weights",
    "get_method",
    "grl_lambda",
    "register_method",
]
