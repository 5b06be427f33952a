"""One modality table: its rows agree with transformers, and the modality of a model or a dataset is read from it."""

from __future__ import annotations

import pytest
import transformers
from datasets import Audio, ClassLabel, Dataset, Features, Image
from transformers.models.auto import modeling_auto

import hf_transfer.backbones as backbones
import hf_transfer.data as data
from hf_transfer.modalities import (
    MODALITIES,
    MODALITY_TABLE,
    ModalityMismatchError,
    get_modality,
    infer_modality,
    modality_of_architectures,
    modality_of_dataset,
    modality_of_input_name,
    modality_of_model,
    modality_of_path,
    modality_of_task,
    task_of,
)


def test_the_table_names_real_transformers_classes():
    assert MODALITIES == ("image", "audio", "text")
    tasks = {"image": "image-classification", "audio": "audio-classification", "text": "text-classification"}
    model_types = {"image": "vit", "audio": "wav2vec2", "text": "bert"}
    for name, row in MODALITY_TABLE.items():
        assert row.name == name and row.task == tasks[name]
        assert hasattr(transformers, row.auto_model) and hasattr(transformers, row.auto_processor)
        assert model_types[name] in getattr(modeling_auto, row.auto_mapping)
        module, _, cls = row.processor_base.partition(":")
        assert isinstance(getattr(__import__(module, fromlist=[cls]), cls), type)
    assert MODALITY_TABLE["image"].input_names == ("pixel_values",)
    assert set(MODALITY_TABLE["audio"].input_names) == {"input_values", "input_features"}
    assert MODALITY_TABLE["text"].input_names == ("input_ids",)


def test_lookups_go_both_ways():
    for name in MODALITIES:
        assert modality_of_task(task_of(name)) == name
        for input_name in get_modality(name).input_names:
            assert modality_of_input_name(input_name) == name
    assert modality_of_task("token-classification") is None and modality_of_input_name("inputs_embeds") is None
    with pytest.raises(ValueError, match=r"Unknown modality 'video'; expected one of \('image', 'audio', 'text'\)"):
        get_modality("video")
    assert modality_of_path("x/Photo.JPG") == "image" and modality_of_path("a.flac") == "audio"
    assert modality_of_path("notes.txt") is None and modality_of_path("no_suffix") is None
    assert modality_of_architectures(["ViTForImageClassification"]) == "image"
    assert modality_of_architectures(["HubertForSequenceClassification", "Wav2Vec2ForSequenceClassification"]) == "audio"
    assert modality_of_architectures(["BertForSequenceClassification"]) == "text"
    assert modality_of_architectures([]) is None


def test_one_mismatch_error_everywhere():
    assert issubclass(ModalityMismatchError, ValueError)
    assert backbones.ModalityMismatchError is ModalityMismatchError
    assert data.ModalityMismatchError is ModalityMismatchError
    assert data.infer_modality is infer_modality
    with pytest.raises(ModalityMismatchError, match="dataset is audio but the backbone expects images"):
        data.check_modality("image", "audio")


def test_infer_modality_of_models():
    from transformers import BertConfig, BertForSequenceClassification, ViTConfig, ViTForImageClassification
    from transformers import Wav2Vec2Config, Wav2Vec2ForSequenceClassification, WhisperConfig
    from transformers import WhisperForAudioClassification

    tiny = dict(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16)
    vit = ViTForImageClassification(ViTConfig(image_size=8, patch_size=4, **tiny))
    bert = BertForSequenceClassification(BertConfig(vocab_size=50, **tiny))
    wav2vec2 = Wav2Vec2ForSequenceClassification(
        Wav2Vec2Config(conv_dim=(8,), conv_kernel=(2,), conv_stride=(2,), num_conv_pos_embeddings=2, **tiny)
    )
    whisper = WhisperForAudioClassification(
        WhisperConfig(d_model=16, encoder_layers=1, encoder_attention_heads=2, decoder_layers=1,
                      decoder_attention_heads=2, encoder_ffn_dim=16, decoder_ffn_dim=16, num_mel_bins=8,
                      max_source_positions=8, vocab_size=50)
    )
    assert [infer_modality(m) for m in (vit, bert, wav2vec2, whisper)] == ["image", "text", "audio", "audio"]
    assert modality_of_model(whisper) == "audio"  # input_features
    with pytest.raises(ValueError, match=r"Cannot tell the modality of Linear \(main input None\)"):
        import torch

        infer_modality(torch.nn.Linear(2, 2))


def test_infer_modality_of_datasets():
    labels = ClassLabel(names=["a", "b"])
    images = Dataset.from_dict(
        {"input": [{"bytes": None, "path": "a.png"}], "label": [0]},
        features=Features({"input": Image(decode=False), "label": labels}),
    )
    audio = Dataset.from_dict({"input": ["a.wav"], "label": [0]}).cast_column("input", Audio(decode=False))
    text = Dataset.from_dict({"input": ["a sentence", "another"], "label": [0, 1]})
    paths = Dataset.from_dict({"input": ["x/a.jpg", "y/b.PNG"], "label": [0, 1]})
    mixed = Dataset.from_dict({"input": ["x/a.jpg", "y/b.wav"], "label": [0, 1]})
    numbers = Dataset.from_dict({"input": [1, 2], "label": [0, 1]})
    assert [infer_modality(d) for d in (images, audio, text, paths, mixed)] == ["image", "audio", "text", "image", "text"]
    assert modality_of_dataset(text, "input") == "text"
    with pytest.raises(ValueError, match="Column 'text' not in dataset columns"):
        infer_modality(text, column="text")
    with pytest.raises(ValueError, match="Cannot infer modality of column 'input'"):
        infer_modality(numbers)
