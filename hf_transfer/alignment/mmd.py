"""Multi-kernel maximum mean discrepancy (MK-MMD, the loss of DAN).

Long et al., *Learning Transferable Features with Deep Adaptation Networks*, ICML 2015;
Gretton et al., *A Kernel Two-Sample Test*, JMLR 2012.

With source features :math:`\\{x_i\\}_{i=1}^m`, target features :math:`\\{y_j\\}_{j=1}^n` and a kernel
:math:`k`, the squared MMD is the distance between the two kernel mean embeddings. Its unbiased
(quadratic-time) estimate is

.. math::

    \\widehat{\\mathrm{MMD}}^2_u = \\frac{1}{m(m-1)} \\sum_{i \\ne i'} k(x_i, x_{i'})
        + \\frac{1}{n(n-1)} \\sum_{j \\ne j'} k(y_j, y_{j'}) - \\frac{2}{mn} \\sum_{i, j} k(x_i, y_j)

and the linear-time estimate (Gretton et al., Lemma 14) pairs consecutive rows,
:math:`N = 2\\lfloor \\min(m, n)/2 \\rfloor`,

.. math::

    \\widehat{\\mathrm{MMD}}^2_l = \\frac{2}{N} \\sum_{i=1}^{N/2} k(x_{2i-1}, x_{2i}) + k(y_{2i-1}, y_{2i})
        - k(x_{2i-1}, y_{2i}) - k(x_{2i}, y_{2i-1}).

DAN's kernel is a family of Gaussians, :math:`k = \\frac{1}{K}\\sum_u \\exp(-\\|a-b\\|^2 / 2\\sigma_u^2)`,
with bandwidths :math:`\\sigma_u^2 = h \\cdot \\text{mul}^{u}`, :math:`u = -\\lfloor K/2 \\rfloor, \\dots,
\\lfloor K/2 \\rfloor` around the median heuristic :math:`h`, the median squared distance between
two different rows of the pooled batch (detached). Minimising the estimate over the features that
enter the classifier pulls the two domains' feature distributions together without a
discriminator. Two samples of one distribution give about 0: the estimate is unbiased, so it can be
slightly negative.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .registry import AlignmentBatch, AlignmentMethod, MethodCard, TermOutput, register_method


def median_heuristic(features: torch.Tensor) -> torch.Tensor:
    """Median squared distance between two different rows of ``features`` (detached, at least 1e-8)."""
    with torch.no_grad():
        distances = torch.cdist(features, features).pow(2)
        n = len(features)
        off_diagonal = distances[~torch.eye(n, dtype=torch.bool, device=features.device)]
        if not off_diagonal.numel():
            return features.new_tensor(1.0)
        # the midpoint of the two middle values (torch.median would take the lower one); quantile's size limit
        # is far above a training batch's n(n-1) pairs
        median = off_diagonal.quantile(0.5) if off_diagonal.numel() <= 2**24 else off_diagonal.median()
        return median.clamp_min(1e-8)


def gaussian_kernel_bandwidths(base: torch.Tensor, kernel_num: int = 5, kernel_mul: float = 2.0) -> torch.Tensor:
    """``σ²_u = base · kernel_mul^u`` for ``u = -⌊K/2⌋ … ⌊K/2⌋`` (``K = kernel_num``; even K leans lower)."""
    exponents = torch.arange(kernel_num, dtype=base.dtype, device=base.device) - kernel_num // 2
    return base * kernel_mul ** exponents


def multi_kernel(a: torch.Tensor, b: torch.Tensor, bandwidths: torch.Tensor) -> torch.Tensor:
    """``(len(a), len(b))`` mean over ``bandwidths`` of ``exp(-‖a_i − b_j‖² / 2σ²)``."""
    squared = torch.cdist(a, b).pow(2)
    return torch.exp(-squared.unsqueeze(-1) / (2 * bandwidths)).mean(-1)


def mmd_squared(
    source: torch.Tensor, target: torch.Tensor, bandwidths: torch.Tensor, *, linear: bool = False
) -> torch.Tensor:
    """The unbiased quadratic (default) or linear-time estimate of MMD² with the given Gaussian bandwidths."""
    if linear:
        n = 2 * (min(len(source), len(target)) // 2)
        if n == 0:
            return (source.sum() + target.sum()) * 0.0
        x1, x2, y1, y2 = source[0:n:2], source[1:n:2], target[0:n:2], target[1:n:2]

        def pair(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            return torch.exp(-(a - b).pow(2).sum(-1, keepdim=True) / (2 * bandwidths)).mean(-1)

        return (pair(x1, x2) + pair(y1, y2) - pair(x1, y2) - pair(x2, y1)).mean()
    m, n = len(source), len(target)
    if m < 2 or n < 2:
        return (source.sum() + target.sum()) * 0.0
    k_ss, k_tt, k_st = multi_kernel(source, source, bandwidths), multi_kernel(target, target, bandwidths), \
        multi_kernel(source, target, bandwidths)
    within_source = (k_ss.sum() - k_ss.diagonal().sum()) / (m * (m - 1))
    within_target = (k_tt.sum() - k_tt.diagonal().sum()) / (n * (n - 1))
    return within_source + within_target - 2 * k_st.mean()


class MultipleKernelMaximumMeanDiscrepancy(nn.Module):
    """``forward(source_features, target_features) -> MMD²`` with DAN's Gaussian family around the median heuristic."""

    def __init__(self, kernel_num: int = 5, kernel_mul: float = 2.0, linear: bool = False) -> None:
        super().__init__()
        if kernel_num < 1 or kernel_mul <= 0:
            raise ValueError(f"MMD needs kernel_num >= 1 and kernel_mul > 0, got {kernel_num} and {kernel_mul}.")
        self.kernel_num, self.kernel_mul, self.linear = kernel_num, kernel_mul, linear

    def forward(self, source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        base = median_heuristic(torch.cat([source, target]).float())
        bandwidths = gaussian_kernel_bandwidths(base, self.kernel_num, self.kernel_mul)
        return mmd_squared(source.float(), target.float(), bandwidths, linear=self.linear)


# ----------------------------------------------------------------------------- the registered method
@dataclass
class MmdSettings:
    kernel_num: int = 5
    """Number of Gaussian kernels."""
    kernel_mul: float = 2.0
    """Ratio between neighbouring bandwidths."""
    linear: bool = False
    """Use the linear-time estimator instead of the unbiased quadratic one."""


class MmdTerm:
    """MK-MMD between the batch's source rows and target rows (features entering the classifier)."""

    def __init__(self, settings: MmdSettings) -> None:
        self.loss = MultipleKernelMaximumMeanDiscrepancy(settings.kernel_num, settings.kernel_mul, settings.linear)

    def __call__(self, batch: AlignmentBatch, *, domain_head: nn.Module, grl_lambda: float) -> TermOutput:
        is_target = batch.domain_labels == 1
        loss = self.loss(batch.features[~is_target], batch.features[is_target])
        return TermOutput(loss, {"mmd_loss": loss.detach()})


register_method(
    AlignmentMethod(
        name="mmd",
        summary="multi-kernel MMD between source and target features, no discriminator (DAN, Long et al. 2015)",
        settings_class=MmdSettings,
        build_term=MmdTerm,
        card=MethodCard(
            title="multi-kernel maximum mean discrepancy (MK-MMD, as in DAN)",
            short="MMD",
            description=(
                "Alongside the classification loss on labelled source data, the squared maximum mean discrepancy "
                "between source and target features (a family of Gaussian kernels around the median distance; Long et "
                "al., ICML 2015) is minimised, pulling the two domains' feature distributions together without a "
                "discriminator. Only source labels are used; the target domain contributes unlabelled inputs."
            ),
            tags=("mmd", "dan"),
        ),
        weight_argument="domain_loss_weight",
    )
)
