"""Class-importance weights for domain-adversarial training under label shift (IWDAN).

Combes et al., *Domain Adaptation with Conditional Distribution Matching and Generalized
Label Shift*, NeurIPS 2020; the weights as in Cao et al., *Partial Adversarial Domain
Adaptation*, ECCV 2018.

Plain DANN matches the feature marginals :math:`p_S(z)` and :math:`p_T(z)`. When the class
proportions differ (balanced SST-2 vs mostly-positive financial news; a balanced blood-cell
atlas vs a hospital where most cells are neutrophils) a perfect match *must* map some target
examples of the frequent class onto source features of the rare ones: alignment then costs
accuracy. IWDAN matches the re-weighted source instead,

.. math::

    \\mathcal{L}_{dom} = -\\frac{1}{n_s}\\sum_{i \\in S} w_{y_i} \\log\\big(1 - D(z_i)\\big)
                        -\\frac{1}{n_t}\\sum_{j \\in T} \\log D(z_j),
    \\qquad w_y = \\frac{\\hat p_T(y)}{p_S(y)},

so the discriminator compares the target with a source that has the target's class mix.
:math:`\\hat p_T(y)` is the classifier's mean predicted probability on the target examples of
the batch (no target labels), :math:`p_S(y)` the source label frequency in the batch; both are
detached, so the weights steer the alignment without being trained. The weights are computed
per batch, so they need no state to checkpoint and are the same code on every DDP rank.
"""

from __future__ import annotations

import torch


def class_importance_weights(
    source_labels: torch.Tensor, target_probabilities: torch.Tensor, max_weight: float = 10.0
) -> torch.Tensor:
    """Per-class weights :math:`w_y = \\hat p_T(y) / p_S(y)`, normalised to mean 1 over the source examples.

    Args:
        source_labels: ``(n_s,)`` class ids of the labelled source examples.
        target_probabilities: ``(n_t, C)`` softmax outputs on the target examples.
        max_weight: upper clip (before normalisation) so that a class with one source example in
            the batch cannot dominate it.

    Returns:
        ``(C,)`` weights; classes with no source example in the batch get 0 (they have no term).
    """
    num_classes = target_probabilities.shape[-1]
    with torch.no_grad():
        source_counts = torch.bincount(source_labels, minlength=num_classes).to(target_probabilities.dtype)
        source_prior = source_counts / source_counts.sum().clamp_min(1)
        target_prior = target_probabilities.float().mean(0).to(target_probabilities.dtype)
        present = source_counts > 0
        weights = torch.zeros(num_classes, dtype=target_probabilities.dtype, device=target_probabilities.device)
        weights[present] = (target_prior[present] / source_prior[present]).clamp(max=max_weight)
        mean_weight = (weights[source_labels]).mean()
        if mean_weight > 0:
            weights = weights / mean_weight
        else:  # the target puts no mass on any class in the batch: fall back to plain DANN
            weights = present.to(weights.dtype)
    return weights


@torch.no_grad()
def class_weighted_domain_weights(
    logits: torch.Tensor, labels: torch.Tensor | None, domain_labels: torch.Tensor
) -> torch.Tensor | None:
    """Per-row domain-loss weights for IWDAN: ``w_y`` for labelled source rows, 1 for the rest.

    ``None`` (plain DANN) when the batch has no target row or no labelled source row.
    """
    is_target = domain_labels == 1
    if labels is None or not is_target.any():
        return None
    labelled_source = (domain_labels == 0) & (labels != -100)
    if not labelled_source.any():
        return None
    class_weights = class_importance_weights(labels[labelled_source], logits[is_target].float().softmax(-1))
    weights = torch.ones(len(domain_labels), device=logits.device)
    weights[labelled_source] = class_weights[labels[labelled_source]].float()
    return weights
