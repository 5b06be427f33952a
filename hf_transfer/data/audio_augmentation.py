"""Audio augmentations for the labelled source domain (waveform in, waveform out).

* ``speed``: speed perturbation (Ko et al., "Audio augmentation for speech recognition",
  Interspeech 2015). The waveform, already at the model's rate, is resampled by a factor
  :math:`α` drawn from ``factors`` (Kaldi's 0.9 / 1.0 / 1.1) and played back at the original
  rate, so tempo and pitch both change by :math:`α` and the spectral envelope is scaled as a
  different vocal-tract length would scale it. It is the speaker-shift counterpart of stain
  augmentation: the source covers more voices, with no target data involved.
* ``speed_gain``: ``speed`` plus a random gain of ±6 dB (recording level).

Resampling is scipy's polyphase ``resample_poly`` (the same filter the loader uses), with
:math:`α = p/q` in lowest terms. Random numbers come from torch's generator, which DataLoader
seeds per worker.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import torch
from scipy.signal import resample_poly

AUDIO_AUGMENTATIONS = ("none", "speed", "speed_gain")


@dataclass
class AudioAugmentation:
    """A picklable callable (DataLoader workers) applied to each decoded training waveform."""

    kind: str = "speed"
    factors: tuple[float, ...] = (0.9, 1.0, 1.1)
    max_gain_db: float = 6.0
    modality = "audio"

    def __post_init__(self) -> None:
        if self.kind not in AUDIO_AUGMENTATIONS or self.kind == "none":
            raise ValueError(f"audio augmentation must be one of {AUDIO_AUGMENTATIONS[1:]}, got {self.kind!r}.")
        if not self.factors or any(f <= 0 for f in self.factors):
            raise ValueError(f"speed factors must be positive, got {self.factors}.")

    def __call__(self, waveform: np.ndarray) -> np.ndarray:
        factor = self.factors[int(torch.randint(len(self.factors), ()).item())]
        out = change_speed(waveform, factor)
        if self.kind == "speed_gain":
            gain_db = (2 * torch.rand(()).item() - 1) * self.max_gain_db
            out = out * np.float32(10 ** (gain_db / 20))
        return out.astype(np.float32, copy=False)


def change_speed(waveform: np.ndarray, factor: float) -> np.ndarray:
    """Play ``waveform`` ``factor`` times faster (``factor`` > 1 shortens it and raises the pitch)."""
    if factor == 1.0:
        return waveform
    ratio = Fraction(factor).limit_denominator(100)
    # faster playback = fewer samples at the same rate: resample by q/p
    return resample_poly(waveform, ratio.denominator, ratio.numerator).astype(np.float32, copy=False)


def build_audio_augmentation(kind: str | None) -> AudioAugmentation | None:
    """``None`` for no augmentation, else an :class:`AudioAugmentation` of that kind."""
    if kind is None or kind == "none":
        return None
    return AudioAugmentation(kind)
