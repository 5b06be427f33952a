"""The source-only baseline: the same code path with no alignment loss.

It trains on labelled source batches exactly as the adaptation methods do (same batches, same
domain head run as a zero-weight probe, same random numbers), so the difference between a method
and this baseline is the method's loss alone. The target is seen but never trained on.
"""

from __future__ import annotations

from dataclasses import dataclass

from .registry import AlignmentMethod, MethodCard, register_method


@dataclass
class SourceOnlySettings:
    """The baseline has no settings."""


register_method(
    AlignmentMethod(
        name="source_only",
        summary="the baseline: the same training on labelled source batches, no target loss",
        settings_class=SourceOnlySettings,
        build_term=None,
        card=MethodCard(
            title="source-only fine-tuning (no domain alignment)",
            short="Source-only",
            description=(
                "The adapter was fine-tuned on labelled source data only; the target domain was used for evaluation. "
                "This is the reference point that domain adaptation methods are compared against."
            ),
            tags=("source-only",),
            uses_target=False,
        ),
    )
)
