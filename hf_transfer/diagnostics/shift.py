"""How far apart two domains are, in a model's feature space, and whether adaptation is likely to matter.

Three measures, each on the pooled features that enter the classifier (what the alignment
methods align), none reading a target label:

* the **proxy A-distance** (:func:`hf_transfer.metrics.a_distance.proxy_a_distance`, Ben-David et
  al. 2007): :math:`2(1 - 2ε)` with ε the held-out error of a linear domain classifier; 0 when
  the domains cannot be told apart, 2 when they are perfectly separable;
* the **MMD** between the two feature samples with DAN's Gaussian kernel family around the median
  distance (the estimator of :mod:`hf_transfer.alignment.mmd`, unbiased), with a **permutation
  test**: the share of random relabellings of the pooled rows whose MMD² is at least the observed
  one (Gretton et al., JMLR 2012, §5) — a p-value that does not depend on the kernel's scale;
* the **class mix**: the model's predicted class shares on the target against the source's label
  shares, compared by total-variation distance :math:`\\tfrac12 \\sum_k |p_k - q_k|`. A large gap
  means label shift (the target's classes are mixed differently) or systematic errors under the
  shift; a model predicting one class for nearly everything is called out.

:meth:`ShiftDiagnosis.verdict` turns them into plain words.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

#: Proxy A-distance below which the domains count as close, and above which as far apart.
CLOSE_A_DISTANCE, FAR_A_DISTANCE = 0.5, 1.5
#: Significance level of the MMD permutation test.
MMD_ALPHA = 0.05
#: Total-variation distance between class mixes above which the mixes count as different.
CLASS_MIX_GAP = 0.2


def _as_tensor(values: Any) -> torch.Tensor:
    tensor = values.detach() if isinstance(values, torch.Tensor) else torch.as_tensor(np.asarray(values))
    return tensor.double().cpu()


def feature_mmd(source_features: Any, target_features: Any, *, kernel_num: int = 5, kernel_mul: float = 2.0) -> float:
    """DAN's multi-kernel unbiased MMD² between two feature samples (bandwidths from the pooled median distance)."""
    from ..alignment.mmd import MultipleKernelMaximumMeanDiscrepancy

    mmd = MultipleKernelMaximumMeanDiscrepancy(kernel_num, kernel_mul)
    return float(mmd(_as_tensor(source_features).float(), _as_tensor(target_features).float()))


def mmd_permutation_test(
    source_features: Any, target_features: Any, *, permutations: int = 200, seed: int = 0,
    kernel_num: int = 5, kernel_mul: float = 2.0,
) -> tuple[float, float]:
    """``(MMD², p-value)``: DAN's multi-kernel unbiased MMD² and its permutation test.

    The bandwidths come from the median heuristic on the pooled rows, as in training
    (:class:`~hf_transfer.alignment.mmd.MultipleKernelMaximumMeanDiscrepancy`); the kernel matrix is
    computed once and every permutation reuses it. ``p = (1 + #{MMD²_perm ≥ MMD²}) / (1 + permutations)``.
    """
    from ..alignment.mmd import gaussian_kernel_bandwidths, median_heuristic, mmd_squared, multi_kernel

    source, target = _as_tensor(source_features), _as_tensor(target_features)
    m, n = len(source), len(target)
    if m < 2 or n < 2:
        raise ValueError(f"The MMD test needs at least 2 rows per domain, got {m} and {n}.")
    pooled = torch.cat([source, target])
    bandwidths = gaussian_kernel_bandwidths(median_heuristic(pooled), kernel_num, kernel_mul)
    observed = float(mmd_squared(source, target, bandwidths))
    kernel = multi_kernel(pooled, pooled, bandwidths).numpy()
    diagonal = np.diag(kernel)
    rng = np.random.default_rng(seed)
    # one column per permutation: 1 where a row is drawn into the "source" side
    sides = np.zeros((m + n, permutations))
    for column in range(permutations):
        sides[rng.permutation(m + n)[:m], column] = 1.0
    other = 1.0 - sides
    k_sides, k_other = kernel @ sides, kernel @ other
    within_source = ((sides * k_sides).sum(0) - sides.T @ diagonal) / (m * (m - 1))
    within_target = ((other * k_other).sum(0) - other.T @ diagonal) / (n * (n - 1))
    across = (sides * k_other).sum(0) / (m * n)
    null = within_source + within_target - 2 * across
    p_value = (1 + int((null >= observed - 1e-12).sum())) / (1 + permutations)
    return observed, float(p_value)


def class_shares(classes: Any, num_classes: int) -> list[float]:
    """The share of each class id ``0..num_classes-1`` among ``classes`` (ids ``-100`` are left out)."""
    ids = np.asarray(classes, dtype=np.int64).ravel()
    ids = ids[ids >= 0]
    if not len(ids):
        return []
    counts = np.bincount(ids, minlength=num_classes)[:num_classes]
    return (counts / counts.sum()).tolist()


def total_variation(p: list[float], q: list[float]) -> float:
    """½ Σ|p_k − q_k| between two class mixes (0: the same mix, 1: disjoint)."""
    return float(0.5 * np.abs(np.asarray(p) - np.asarray(q)).sum())


@dataclass
class ShiftDiagnosis:
    """The measures of one source/target pair, and the verdict in words."""

    a_distance: float
    mmd: float
    mmd_p_value: float
    num_source: int
    num_target: int
    class_names: list[str] = field(default_factory=list)
    source_label_mix: list[float] = field(default_factory=list)
    """The source's label shares (class id order); empty without source labels."""
    source_predicted_mix: list[float] = field(default_factory=list)
    target_predicted_mix: list[float] = field(default_factory=list)
    """The model's predicted class shares on the target; empty when the model's head was not trained for these classes."""
    source_accuracy: float | None = None
    """The model's accuracy on the source rows (how much its predicted class mix can be trusted)."""

    @property
    def class_mix_gap(self) -> float | None:
        """Total variation between the source's label mix and the target's predicted mix."""
        if not self.source_label_mix or not self.target_predicted_mix:
            return None
        return total_variation(self.source_label_mix, self.target_predicted_mix)

    @property
    def level(self) -> str:
        """``small``, ``moderate`` or ``large`` covariate shift in the features."""
        if self.a_distance >= FAR_A_DISTANCE:
            return "large"
        if self.a_distance < CLOSE_A_DISTANCE and self.mmd_p_value >= MMD_ALPHA:
            return "small"
        return "moderate"

    @property
    def likely_to_matter(self) -> bool:
        """Whether adaptation is likely to change the target's results (not a small shift, or a class-mix gap)."""
        gap = self.class_mix_gap
        return self.level != "small" or (gap is not None and gap > CLASS_MIX_GAP)

    def verdict(self) -> str:
        """The diagnosis in plain words."""
        test = (
            f"MMD² {self.mmd:.3g}, permutation p = {self.mmd_p_value:.3g}: "
            + ("a significant difference" if self.mmd_p_value < MMD_ALPHA else "no significant difference")
        )
        a = f"proxy A-distance {self.a_distance:.2f} on a scale of 0 (same) to 2 (separable)"
        lines = []
        if self.level == "large":
            lines.append(
                f"The domains are far apart in the model's features ({a}; {test}): a linear classifier tells them "
                "apart almost perfectly. Adaptation is likely to matter: train with an alignment method (e.g. "
                "'dann', 'mcc' or 'mmd') and compare it with 'source_only' by the label-free validators "
                "(hf-transfer sweep)."
            )
        elif self.level == "moderate":
            lines.append(
                f"The domains differ in the model's features ({a}; {test}). Adaptation may help; compare an "
                "alignment method with 'source_only' (hf-transfer sweep) before relying on either."
            )
        else:
            lines.append(
                f"The domains are hard to tell apart in the model's features ({a}; {test}). Adaptation is unlikely "
                "to matter much for covariate shift: a source-only model should transfer about as well."
            )
        gap = self.class_mix_gap
        chance = 1.0 / max(1, len(self.source_label_mix))
        if gap is not None and self.source_accuracy is not None and self.source_accuracy <= chance + 0.05:
            lines.append(
                f"The model's head does not separate the classes even on the source (accuracy "
                f"{self.source_accuracy:.2f}), so its predicted class mix says nothing: diagnose with a source-only "
                "model (hf-transfer train with method source_only) to compare class mixes."
            )
        elif gap is not None:
            top = max(self.target_predicted_mix)
            if top >= 0.95 and len(self.target_predicted_mix) > 1:
                name = self._class_name(int(np.argmax(self.target_predicted_mix)))
                lines.append(
                    f"On the target the model predicts one class ({name}) for {100 * top:.0f}% of the examples: the "
                    "shift breaks its predictions, so adaptation (or a check of the target data) is needed."
                )
            elif gap > CLASS_MIX_GAP:
                lines.append(
                    f"The model's predicted class mix on the target differs from the source's label mix (total "
                    f"variation {gap:.2f}): either the target's classes are mixed differently (label shift; consider "
                    "domain_loss_class_weighting, IWDAN) or the shift causes systematic errors."
                )
            else:
                lines.append(f"The predicted class mix on the target is close to the source's label mix (total variation {gap:.2f}).")
        elif self.source_label_mix and not self.target_predicted_mix:
            lines.append("The model's head was not trained for these classes, so its predicted class mix is not reported.")
        return "\n".join(lines)

    def _class_name(self, index: int) -> str:
        return repr(self.class_names[index]) if index < len(self.class_names) else f"class {index}"

    def to_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values.update(level=self.level, likely_to_matter=self.likely_to_matter, class_mix_gap=self.class_mix_gap,
                      verdict=self.verdict())
        return values

    def format(self) -> str:
        """A short report: the numbers, then the verdict."""
        rows = [
            f"Source: {self.num_source} examples, target: {self.num_target} examples.",
            f"Proxy A-distance: {self.a_distance:.3f}  (0 = indistinguishable, 2 = separable)",
            f"MMD²: {self.mmd:.4g}  (permutation p-value {self.mmd_p_value:.3g})",
        ]
        if self.source_accuracy is not None:
            rows.append(f"Model accuracy on the source: {self.source_accuracy:.3f}")
        if self.source_label_mix and self.target_predicted_mix:
            names = self.class_names or [str(i) for i in range(len(self.source_label_mix))]
            rows.append("Class mix   " + "  ".join(f"{n[:10]:>10}" for n in names))
            rows.append("source lbl  " + "  ".join(f"{v:10.3f}" for v in self.source_label_mix))
            if self.source_predicted_mix:
                rows.append("source pred " + "  ".join(f"{v:10.3f}" for v in self.source_predicted_mix))
            rows.append("target pred " + "  ".join(f"{v:10.3f}" for v in self.target_predicted_mix))
        return "\n".join([*rows, "", self.verdict()])


def measure_shift(
    source_features: Any,
    target_features: Any,
    *,
    source_labels: Any | None = None,
    source_logits: Any | None = None,
    target_logits: Any | None = None,
    class_names: list[str] | None = None,
    permutations: int = 200,
    seed: int = 0,
) -> ShiftDiagnosis:
    """Measure the shift between two feature samples (and the model's class mixes when logits are given)."""
    from ..metrics.a_distance import proxy_a_distance

    source, target = _as_tensor(source_features), _as_tensor(target_features)
    a_distance = proxy_a_distance(source.float(), target.float(), seed=seed)
    mmd, p_value = mmd_permutation_test(source, target, permutations=permutations, seed=seed)
    num_classes = len(class_names or []) or (
        int(np.asarray(target_logits).shape[-1]) if target_logits is not None else 0
    )
    diagnosis = ShiftDiagnosis(
        a_distance=a_distance, mmd=mmd, mmd_p_value=p_value, num_source=len(source), num_target=len(target),
        class_names=list(class_names or []),
    )
    if source_labels is not None and num_classes:
        diagnosis.source_label_mix = class_shares(source_labels, num_classes)
    if source_logits is not None:
        predictions = _as_tensor(source_logits).argmax(-1).numpy()
        diagnosis.source_predicted_mix = class_shares(predictions, num_classes)
        if source_labels is not None:
            labels = np.asarray(source_labels).ravel()
            keep = labels >= 0
            if keep.any():
                diagnosis.source_accuracy = float((predictions[keep] == labels[keep]).mean())
    if target_logits is not None:
        diagnosis.target_predicted_mix = class_shares(_as_tensor(target_logits).argmax(-1).numpy(), num_classes)
    return diagnosis
