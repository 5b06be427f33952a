"""Audio decoding with soundfile and resampling with scipy, end to end through the transform."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from datasets import Audio
from transformers import Wav2Vec2FeatureExtractor

from hf_transfer.data import (
    AudioDecodeError,
    DomainDataArguments,
    build_transform,
    load_audio,
    load_domain,
    read_audio,
)


def sine(freq: float, rate: int, seconds: float, channels: int = 1) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    wave = (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return wave if channels == 1 else np.stack([wave] * channels, axis=1)


def peak_hz(signal: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(signal * np.hanning(len(signal))))
    return float(np.fft.rfftfreq(len(signal), 1 / rate)[np.argmax(spectrum)])


def test_8k_wav_resampled_to_16k_doubles_length_and_keeps_frequency(tmp_path):
    path = tmp_path / "tone.wav"
    sf.write(path, sine(440, 8000, 0.5), 8000)
    out = load_audio(str(path), 16000)
    assert out.dtype == np.float32 and out.ndim == 1
    assert len(out) == 8000  # 4000 samples at 8 kHz -> 8000 at 16 kHz
    assert peak_hz(out, 16000) == pytest.approx(440, abs=4)
    assert peak_hz(out, 16000) != pytest.approx(220, abs=4)  # would be the peak if not resampled


def test_stereo_bytes_are_mixed_to_mono_and_truncated(tmp_path):
    path = tmp_path / "stereo.flac"
    sf.write(path, sine(1000, 16000, 1.0, channels=2), 16000)
    raw = path.read_bytes()
    out = load_audio({"bytes": raw, "path": None}, 16000, max_duration_s=0.25)
    assert out.shape == (4000,)
    padded = load_audio(raw, 16000, max_duration_s=2.0, pad=True)
    assert padded.shape == (32000,) and not padded[16000:].any()


def test_unreadable_audio_names_the_path(tmp_path):
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF not really a wav file")
    with pytest.raises(AudioDecodeError, match="broken.wav"):
        read_audio(str(bad))


def test_audio_transform_resamples_pads_and_stays_lazy(tmp_path):
    root = tmp_path / "calls"
    (root / "beep").mkdir(parents=True)
    (root / "hum").mkdir()
    sf.write(root / "beep" / "a.wav", sine(1000, 8000, 0.25), 8000)  # 2000 samples @ 8 kHz
    sf.write(root / "hum" / "b.wav", sine(300, 8000, 0.5), 8000)  # 4000 samples @ 8 kHz
    ds = load_domain(DomainDataArguments(dataset=str(root)))
    extractor = Wav2Vec2FeatureExtractor(sampling_rate=16000, return_attention_mask=True)

    longest = ds.with_transform(build_transform(extractor, "audio"))
    batch = longest[:2]
    assert batch["input_values"].shape == (2, 8000)  # longest clip, resampled to 16 kHz
    assert batch["attention_mask"].sum(dim=1).tolist() == [4000, 8000]
    assert batch["labels"] == [0, 1]
    assert peak_hz(batch["input_values"][1].numpy(), 16000) == pytest.approx(300, abs=4)

    fixed = ds.with_transform(build_transform(extractor, "audio", max_duration_s=0.4))
    assert fixed[:2]["input_values"].shape == (2, 6400)
    assert fixed[:2]["attention_mask"].sum(dim=1).tolist() == [4000, 6400]

    # Lazy: the stored column is still undecoded paths.
    assert isinstance(ds.features["input"], Audio) and ds.features["input"].decode is False
    assert ds[0]["input"]["path"].endswith("a.wav")
