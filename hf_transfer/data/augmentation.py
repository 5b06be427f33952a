"""Image augmentations for the labelled source domain (PIL in, PIL out).

Why here and not torchvision: the toolkit does not depend on torchvision, and the one
augmentation that matters most for stain/scanner shifts, HED stain jitter, is not in it.

* ``flip``: random horizontal/vertical flips and 90° rotations (orientation-free images such
  as cells, tissue, satellite tiles; never use it for digits or text).
* ``color``: ``flip`` plus brightness, contrast and saturation jitter.
* ``stain``: ``color`` plus HED stain jitter (Tellez et al., "Whole-slide mitosis detection in
  H&E breast histology using PHH3 as a reference to train distilled stain-invariant
  convolutional networks", IEEE TMI 2018; Tellez et al., "Quantifying the effects of data
  augmentation and stain color normalization in convolutional neural networks for
  computational pathology", MedIA 2019). The RGB optical density is unmixed into
  haematoxylin, eosin and DAB channels with the Ruifrok–Johnston matrix ``M``
  (``OD = −log(I) = S·M``), each stain concentration is perturbed as
  ``S_c ← α_c·S_c + β_c`` with ``α_c ~ U(1−σ, 1+σ)``, ``β_c ~ U(−σ, σ)``, and the image is
  recombined ``I = exp(−S·M)``. On Camelyon17-WILDS this kind of augmentation beat DANN.

Random numbers come from torch's generator, which DataLoader seeds per worker.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageEnhance

AUGMENTATIONS = ("none", "flip", "color", "stain")

# Ruifrok & Johnston (2001) stain vectors, rows = haematoxylin, eosin, DAB (as in scikit-image).
RGB_FROM_HED = np.array([[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]], dtype=np.float64)
HED_FROM_RGB = np.linalg.inv(RGB_FROM_HED)
_LOG_ADJUST = np.log(1e-6)


def _uniform(low: float, high: float) -> float:
    return float(low + (high - low) * torch.rand(()).item())


def rgb_to_hed(rgb: np.ndarray) -> np.ndarray:
    """RGB in [0, 1] (H×W×3) → stain concentrations (H×W×3), as scikit-image's ``rgb2hed``.

    Unlike ``rgb2hed`` negative concentrations are kept, so :func:`hed_to_rgb` inverts it exactly.
    """
    rgb = np.maximum(rgb, 1e-6)
    return (np.log(rgb) / _LOG_ADJUST) @ HED_FROM_RGB


def hed_to_rgb(hed: np.ndarray) -> np.ndarray:
    """Inverse of :func:`rgb_to_hed`, clipped to [0, 1]."""
    return np.clip(np.exp((hed * _LOG_ADJUST) @ RGB_FROM_HED), 0, 1)


def hed_jitter(image: Image.Image, sigma: float) -> Image.Image:
    rgb = np.asarray(image.convert("RGB"), dtype=np.float64) / 255.0
    hed = rgb_to_hed(rgb)
    alpha = np.array([_uniform(1 - sigma, 1 + sigma) for _ in range(3)])
    beta = np.array([_uniform(-sigma, sigma) for _ in range(3)])
    out = hed_to_rgb(hed * alpha + beta)
    return Image.fromarray((out * 255 + 0.5).astype(np.uint8))


@dataclass
class ImageAugmentation:
    """Picklable (DataLoader workers) random augmentation; see the module docstring for the kinds."""

    kind: str = "stain"
    stain_sigma: float = 0.05
    color_strength: float = 0.2
    modality = "image"

    def __post_init__(self) -> None:
        if self.kind not in AUGMENTATIONS:
            raise ValueError(f"image augmentation must be one of {AUGMENTATIONS}, got {self.kind!r}.")

    def __call__(self, image: Image.Image) -> Image.Image:
        if self.kind == "none":
            return image
        if torch.rand(()) < 0.5:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        if torch.rand(()) < 0.5:
            image = image.transpose(Image.Transpose.FLIP_TOP_BOTTOM)
        turns = int(torch.randint(0, 4, ()).item())
        if turns:
            image = image.rotate(90 * turns, expand=True)
        if self.kind in ("color", "stain"):
            s = self.color_strength
            image = ImageEnhance.Brightness(image).enhance(_uniform(1 - s, 1 + s))
            image = ImageEnhance.Contrast(image).enhance(_uniform(1 - s, 1 + s))
            image = ImageEnhance.Color(image).enhance(_uniform(1 - s, 1 + s))
        if self.kind == "stain":
            image = hed_jitter(image, self.stain_sigma)
        return image


def build_image_augmentation(kind: str | None) -> ImageAugmentation | None:
    """``None`` for no augmentation, else an :class:`ImageAugmentation` of that kind."""
    if kind is None or kind == "none":
        return None
    return ImageAugmentation(kind)
