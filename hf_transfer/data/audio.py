"""Audio decoding and resampling without ``datasets``' own decoder.

``datasets.Audio(decode=True)`` decodes through torchcodec + FFmpeg, which are
heavy system dependencies we do not require.  Audio columns therefore stay
``Audio(decode=False)`` (``{"bytes", "path"}`` dicts) and are decoded here with
``soundfile`` (libsndfile: WAV, FLAC, OGG, and MP3 with libsndfile >= 1.1).
"""

from __future__ import annotations

import io
import math
import os
from typing import Any

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

from ..modalities import AUDIO
from .image import describe_source

AUDIO_EXTENSIONS: frozenset[str] = AUDIO.file_suffixes


class AudioDecodeError(ValueError):
    """An audio file could not be read; the message names the file."""


def read_audio(value: Any) -> tuple[np.ndarray, int]:
    """Decode ``value`` to ``(samples, sampling_rate)`` without resampling.

    ``value`` may be a path, raw bytes, a ``{"bytes", "path"}`` dict
    (``datasets.Audio(decode=False)``) or an already decoded
    ``{"array", "sampling_rate"}`` dict.  Samples are float32, shape
    ``(frames,)`` for mono or ``(frames, channels)``.
    """
    name = describe_source(value)
    try:
        if isinstance(value, dict) and value.get("array") is not None:
            array = np.asarray(value["array"], dtype=np.float32)
            rate = int(value["sampling_rate"])
            return array, rate
        if isinstance(value, dict):
            data, path = value.get("bytes"), value.get("path")
            source: Any = io.BytesIO(data) if data is not None else path
            if source is None:
                raise ValueError("empty audio value (no bytes and no path)")
        elif isinstance(value, (bytes, bytearray)):
            source = io.BytesIO(value)
        elif isinstance(value, (str, os.PathLike)):
            source = value
        elif value is None:
            raise ValueError("missing audio (None)")
        else:
            raise TypeError(f"unsupported audio value of type {type(value).__name__}")
        array, rate = sf.read(source, dtype="float32", always_2d=False)
    except Exception as err:  # libsndfile raises LibsndfileError/RuntimeError/...
        raise AudioDecodeError(f"Could not read audio {name}: {err}") from err
    if array.size == 0:
        raise AudioDecodeError(f"Could not read audio {name}: the file contains no samples")
    return array, int(rate)


def to_mono(array: np.ndarray) -> np.ndarray:
    """Average channels: speech/audio backbones take a single channel."""
    if array.ndim == 1:
        return array
    return array.mean(axis=1).astype(np.float32)


def resample(array: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Resample a mono signal from ``orig_sr`` to ``target_sr``.

    Uses ``scipy.signal.resample_poly``: scipy is already a dependency (no
    librosa/torchaudio needed), the polyphase FIR filter anti-aliases when
    downsampling, and the ratio is exact and rational (8 kHz -> 16 kHz is
    up=2/down=1; 44.1 kHz -> 16 kHz is 160/441), so output length is
    ``ceil(len * target / orig)`` with no drift.
    """
    if orig_sr == target_sr:
        return array.astype(np.float32, copy=False)
    g = math.gcd(int(orig_sr), int(target_sr))
    out = resample_poly(array, int(target_sr) // g, int(orig_sr) // g)
    return out.astype(np.float32, copy=False)


def fit_length(array: np.ndarray, max_samples: int | None, *, pad: bool = False) -> np.ndarray:
    """Truncate to ``max_samples``; zero-pad up to it when ``pad`` is set."""
    if max_samples is None:
        return array
    if len(array) > max_samples:
        return array[:max_samples]
    if pad and len(array) < max_samples:
        return np.pad(array, (0, max_samples - len(array)))
    return array


def load_audio(
    value: Any,
    sampling_rate: int,
    *,
    max_duration_s: float | None = None,
    pad: bool = False,
) -> np.ndarray:
    """Decode, mix to mono, resample to ``sampling_rate`` and cut to ``max_duration_s``.

    Returns a float32 1-D array.  The input is cut *before* resampling too, so
    a long file does not pay for resampling audio that is thrown away.
    """
    array, rate = read_audio(value)
    array = to_mono(array)
    max_samples = None
    if max_duration_s is not None:
        if max_duration_s <= 0:
            raise ValueError(f"max_duration_s must be > 0, got {max_duration_s}")
        max_samples = int(round(max_duration_s * sampling_rate))
        # Keep one extra input sample so the filter has context at the cut.
        array = array[: int(math.ceil(max_duration_s * rate)) + 1]
    array = resample(array, rate, sampling_rate)
    return fit_length(array, max_samples, pad=pad)
