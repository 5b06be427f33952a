"""The single (per-candidate) validators, by name: the members an ensemble can rank with."""

from __future__ import annotations

from .base import Validator
from .bnm import BatchNuclearNorm
from .class_ami import ClassAMI
from .dev import DeepEmbeddedValidation
from .entropy import Entropy
from .im import InformationMaximization
from .snd import SoftNeighborhoodDensity
from .source_accuracy import SourceAccuracy

#: name -> the validator with its paper's defaults (seed 0 where it has one).
SINGLE_VALIDATORS: dict[str, Validator] = {
    v.name: v
    for v in (
        SourceAccuracy(),
        Entropy(),
        InformationMaximization(),
        BatchNuclearNorm(),
        SoftNeighborhoodDensity(),
        DeepEmbeddedValidation(),
        ClassAMI(),
    )
}
