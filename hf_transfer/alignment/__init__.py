"""Alignment losses: one idea per module, each with its paper and maths in the docstring."""

from .cdan import ConditionalDomainAdversarialLoss, MultilinearMap, RandomizedMultilinearMap
from .dann import DomainAdversarialLoss, DomainDiscriminator, DomainLossOutput
from .grl import GradientReversalLayer, GradientReverseFunction
from .label_shift import class_importance_weights
from .mcc import MinimumClassConfusionLoss
from .schedules import GRL_SCHEDULES, grl_lambda

__all__ = [
    "ConditionalDomainAdversarialLoss",
    "MultilinearMap",
    "RandomizedMultilinearMap",
    "DomainAdversarialLoss",
    "DomainDiscriminator",
    "DomainLossOutput",
    "GradientReversalLayer",
    "GradientReverseFunction",
    "MinimumClassConfusionLoss",
    "GRL_SCHEDULES",
    "class_importance_weights",
    "grl_lambda",
]
