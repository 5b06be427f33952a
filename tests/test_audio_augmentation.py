"""Speed perturbation: tempo and pitch change together, and only the source's training audio gets it."""

import pickle

import numpy as np
import pytest
import torch
from transformers import Wav2Vec2FeatureExtractor, ViTImageProcessor

from hf_transfer.data import AudioAugmentation, build_audio_augmentation, build_transform
from hf_transfer.data.audio_augmentation import change_speed
from tests.test_data_audio import peak_hz, sine


@pytest.mark.parametrize("factor", [0.9, 1.1])
def test_speed_change_scales_duration_and_pitch_by_the_factor(factor):
    rate = 16000
    tone = sine(440.0, rate, 1.0)
    faster = change_speed(tone, factor)
    assert len(faster) == pytest.approx(len(tone) / factor, abs=2)
    assert peak_hz(faster, rate) == pytest.approx(440.0 * factor, rel=0.01)
    assert faster.dtype == np.float32
    assert change_speed(tone, 1.0) is tone


def test_augmentation_draws_from_the_factors_and_pickles():
    tone = sine(300.0, 16000, 0.5)
    torch.manual_seed(0)
    lengths = {len(AudioAugmentation("speed")(tone)) for _ in range(30)}
    assert lengths == {len(change_speed(tone, f)) for f in (0.9, 1.0, 1.1)}
    louder = AudioAugmentation("speed_gain", factors=(1.0,))
    ratios = {round(float(np.abs(louder(tone)).max() / np.abs(tone).max()), 3) for _ in range(10)}
    assert len(ratios) > 1 and all(10 ** (-6 / 20) - 1e-3 <= r <= 10 ** (6 / 20) + 1e-3 for r in ratios)
    assert pickle.loads(pickle.dumps(AudioAugmentation("speed"))).kind == "speed"  # DataLoader workers
    assert build_audio_augmentation("none") is None and build_audio_augmentation(None) is None
    with pytest.raises(ValueError, match="audio augmentation must be one of"):
        AudioAugmentation("reverb")
    with pytest.raises(ValueError, match="speed factors must be positive"):
        AudioAugmentation("speed", factors=(0.0,))


def test_transform_applies_audio_augmentation_and_refuses_the_wrong_modality():
    extractor = Wav2Vec2FeatureExtractor(sampling_rate=16000, do_normalize=False, return_attention_mask=True)
    batch = {"input": [{"array": sine(440.0, 16000, 0.5), "sampling_rate": 16000}], "label": [1]}
    plain = build_transform(extractor, "audio")(batch)
    slow = build_transform(extractor, "audio", augment=AudioAugmentation("speed", factors=(0.9,)))(batch)
    assert slow["input_values"].shape[-1] == pytest.approx(plain["input_values"].shape[-1] / 0.9, abs=2)
    assert slow["labels"] == [1]
    with pytest.raises(ValueError, match=r"model.audio_augmentation\) is for audio data; this domain is image"):
        build_transform(ViTImageProcessor(size={"height": 8, "width": 8}), "image", augment=AudioAugmentation())


def test_pipeline_gives_the_source_training_split_the_audio_augmentation_only():
    from hf_transfer.data import DomainDataArguments
    from hf_transfer.pipeline import ModelArguments, domain_transforms

    extractor = Wav2Vec2FeatureExtractor(sampling_rate=16000)
    domains = DomainDataArguments(dataset="unused"), DomainDataArguments(dataset="unused")
    model_args = ModelArguments(model_name_or_path="unused", audio_augmentation="speed")
    transforms = domain_transforms(extractor, "audio", model_args, *domains)
    assert isinstance(transforms["source"].augment, AudioAugmentation)
    assert all(transforms[name].augment is None for name in ("target", "eval_source", "eval_target"))
    with pytest.raises(ValueError, match="model.audio_augmentation is for audio data but this domain is image"):
        domain_transforms(ViTImageProcessor(), "image", model_args, *domains)
