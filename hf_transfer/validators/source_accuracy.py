"""Source validation accuracy: the plain baseline every label-free validator must beat.

The "source risk" baseline of You et al., ICML 2019 (DEV) and of Musgrave, Belongie & Lim,
2022 (arXiv:2208.07360), where it is often hard to beat: the accuracy on a held-out labelled
split of the *source*,

.. math::

    \\mathrm{Acc}_S = \\frac{1}{|V|} \\sum_{i \\in V} \\mathbb{1}\\big[\\arg\\max_k z_{ik} = y_i\\big],

over the rows :math:`V` of the source validation split that carry a label (``-100`` rows are
skipped, as in the Trainer's metrics). It needs no target data at all, so it cannot see the
shift; its use is as a guard — a candidate whose source accuracy fell to chance has collapsed,
whatever the target-side validators say. Higher is better.
"""

from __future__ import annotations

from .base import IGNORE_INDEX, ValidationInputs, Validator


class SourceAccuracy(Validator):
    """Accuracy of the argmax prediction on the source's held-out labelled rows."""

    name = "source_accuracy"
    higher_is_better = True
    required = ("source_logits", "source_labels")

    def compute(self, inputs: ValidationInputs) -> float:
        logits = inputs.require("source_logits", self.name)
        labels = inputs.require("source_labels", self.name)
        if len(logits) != len(labels):
            raise ValueError(f"source_logits has {len(logits)} rows but source_labels has {len(labels)}.")
        keep = labels != IGNORE_INDEX
        if not keep.any():
            raise ValueError("source_accuracy needs at least one labelled source row; every label is -100.")
        return float((logits[keep].argmax(axis=1) == labels[keep]).mean())
