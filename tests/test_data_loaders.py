"""Loading domains from the Hub, local folders and data files into the ``input``/``label`` shape."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import soundfile as sf
from datasets import Audio, ClassLabel, Dataset, DatasetDict, Features, Image, Value
from PIL import Image as PILImage

from hf_transfer.data import DomainDataArguments, infer_modality, load_domain, load_image


def write_png(path, color=(255, 0, 0), size=(8, 8)) -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    PILImage.new("RGB", size, color).save(path)
    return str(path)


def write_wav(path, rate=8000, seconds=0.1) -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    t = np.arange(int(rate * seconds)) / rate
    sf.write(path, (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), rate)
    return str(path)


@pytest.fixture
def image_folder(tmp_path):
    root = tmp_path / "photos"
    write_png(root / "dog" / "d1.png")
    write_png(root / "cat" / "c1.png", (0, 255, 0))
    write_png(root / "cat" / "c2.jpg", (0, 0, 255))
    (root / "README.txt").write_text("not an image, ignored")
    return root


def test_image_folder_labels_from_subfolders_and_stays_undecoded(image_folder):
    ds = load_domain(DomainDataArguments(dataset=str(image_folder)))
    assert ds.column_names == ["input", "label"]
    assert ds.features["label"] == ClassLabel(names=["cat", "dog"])
    assert isinstance(ds.features["input"], Image) and not ds.features["input"].decode
    assert infer_modality(ds) == "image"
    rows = {os.path.basename(r["input"]["path"]): r["label"] for r in ds}
    assert rows == {"c1.png": 0, "c2.jpg": 0, "d1.png": 1}


def test_split_subfolders_and_missing_split(tmp_path):
    write_png(tmp_path / "d" / "train" / "a" / "1.png")
    write_png(tmp_path / "d" / "train" / "b" / "2.png")
    write_png(tmp_path / "d" / "test" / "a" / "3.png")
    args = DomainDataArguments(dataset=str(tmp_path / "d"), eval_split="test")
    assert len(load_domain(args)) == 2
    test = load_domain(args, split=args.eval_split)
    assert len(test) == 1 and test.features["label"].names == ["a"]
    with pytest.raises(ValueError, match="validation"):
        load_domain(args, split="validation")


def test_flat_folder_is_unlabelled(tmp_path):
    write_png(tmp_path / "target" / "x.png")
    write_png(tmp_path / "target" / "y.png")
    ds = load_domain(DomainDataArguments(dataset=str(tmp_path / "target")))
    assert ds.features["label"] == Value("int64")
    assert list(ds["label"]) == [-1, -1]


def test_audio_folder_keeps_audio_undecoded(tmp_path):
    write_wav(tmp_path / "speech" / "yes" / "a.wav")
    write_wav(tmp_path / "speech" / "no" / "b.flac")
    ds = load_domain(DomainDataArguments(dataset=str(tmp_path / "speech")), modality="audio")
    feature = ds.features["input"]
    assert isinstance(feature, Audio) and feature.decode is False
    assert set(ds[0]["input"]) == {"bytes", "path"}
    assert ds.features["label"].names == ["no", "yes"]


def test_requested_modality_is_checked(image_folder):
    with pytest.raises(ValueError, match="contains image data but modality='audio'"):
        load_domain(DomainDataArguments(dataset=str(image_folder)), modality="audio")


def test_text_csv_with_string_labels_and_missing_label(tmp_path):
    path = tmp_path / "reviews.csv"
    path.write_text("sentence,label\ngreat film,positive\nawful,negative\nmeh,\n")
    ds = load_domain(DomainDataArguments(dataset=str(path), cache_dir=str(tmp_path / "cache")))
    assert infer_modality(ds) == "text"
    assert ds.features["label"].names == ["negative", "positive"]
    assert list(ds["input"]) == ["great film", "awful", "meh"]
    assert list(ds["label"]) == [1, 0, -1]


def test_jsonl_relative_image_paths_resolve_against_file_folder(tmp_path):
    write_png(tmp_path / "data" / "imgs" / "a.png")
    write_png(tmp_path / "data" / "imgs" / "b.png")
    meta = tmp_path / "data" / "meta.jsonl"
    meta.write_text("\n".join(json.dumps(r) for r in [{"file": "imgs/a.png", "y": 1}, {"file": "imgs/b.png", "y": 0}]))
    ds = load_domain(
        DomainDataArguments(dataset=str(meta), label_column="y", cache_dir=str(tmp_path / "cache"))
    )
    assert infer_modality(ds) == "image"
    assert ds[0]["input"]["path"] == str(tmp_path / "data" / "imgs" / "a.png")
    assert ds.features["label"].names == ["0", "1"] and list(ds["label"]) == [1, 0]


def test_glob_of_csv_files_and_unlabelled_option(tmp_path):
    (tmp_path / "a.csv").write_text("text,label\nx,1\n")
    (tmp_path / "b.csv").write_text("text,label\ny,0\n")
    args = DomainDataArguments(dataset=str(tmp_path / "*.csv"), label_column="none", cache_dir=str(tmp_path / "c"))
    ds = load_domain(args)
    assert list(ds["input"]) == ["x", "y"]
    assert list(ds["label"]) == [-1, -1]


def test_max_examples_is_a_seeded_subset(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("text,label\n" + "".join(f"s{i},{i % 2}\n" for i in range(20)))
    args = DomainDataArguments(dataset=str(path), max_examples=5, cache_dir=str(tmp_path / "c"))
    a, b = load_domain(args, seed=1), load_domain(args, seed=1)
    c = load_domain(args, seed=2)
    assert len(a) == 5 and list(a["input"]) == list(b["input"])
    assert list(a["input"]) != list(c["input"])


def test_clear_errors_for_bad_columns_and_paths(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("body,label\nx,1\n")
    with pytest.raises(ValueError, match="set input_column"):
        load_domain(DomainDataArguments(dataset=str(path), cache_dir=str(tmp_path / "c")))
    with pytest.raises(ValueError, match="label_column 'target'.*available columns"):
        load_domain(
            DomainDataArguments(dataset=str(path), input_column="body", label_column="target", cache_dir=str(tmp_path / "c"))
        )
    with pytest.raises(FileNotFoundError, match="missing.csv"):
        load_domain(DomainDataArguments(dataset=str(tmp_path / "missing.csv")))


def test_hub_style_parquet_repo_folder_keeps_classlabel_and_casts_images(tmp_path):
    features = Features({"img": Image(), "fine_label": ClassLabel(names=["plane", "ship"])})
    path = write_png(tmp_path / "raw" / "p.png")
    repo = tmp_path / "repo"
    (repo / "data").mkdir(parents=True)
    Dataset.from_dict({"img": [path, path], "fine_label": [1, 0]}, features=features).to_parquet(
        str(repo / "data" / "train-00000-of-00001.parquet")
    )
    args = DomainDataArguments(dataset=str(repo), label_column="fine_label", cache_dir=str(tmp_path / "c"))
    ds = load_domain(args)  # goes through datasets.load_dataset like a Hub id
    assert ds.features["label"] == ClassLabel(names=["plane", "ship"]) and list(ds["label"]) == [1, 0]
    assert isinstance(ds.features["input"], Image) and ds.features["input"].decode is False
    assert load_image(ds[0]["input"]).size == (8, 8)


def test_save_to_disk_folder(tmp_path):
    DatasetDict(
        {"train": Dataset.from_dict({"sentence": ["a", "b"], "label": [0, 1]}),
         "test": Dataset.from_dict({"sentence": ["c"], "label": [1]})}
    ).save_to_disk(str(tmp_path / "saved"))
    args = DomainDataArguments(dataset=str(tmp_path / "saved"), eval_split="test")
    assert list(load_domain(args)["input"]) == ["a", "b"]
    assert list(load_domain(args, split=args.eval_split)["input"]) == ["c"]


def test_hub_revision_is_passed_on_and_script_datasets_get_a_clear_error(monkeypatch):
    from hf_transfer.data import loaders

    calls = []

    def fake_load_dataset(path, name=None, **kwargs):
        calls.append((path, name, kwargs))
        if kwargs.get("revision") is None:
            raise RuntimeError("Dataset scripts are no longer supported, but found financial_phrasebank.py")
        return Dataset.from_dict(
            {"sentence": ["profit rose", "loss widened"], "label": [1, 0]},
            features=Features({"sentence": Value("string"), "label": ClassLabel(names=["negative", "positive"])}),
        )

    monkeypatch.setattr(loaders.datasets, "load_dataset", fake_load_dataset)
    with pytest.raises(ValueError, match=r"script-based Hub dataset.*refs/convert/parquet.*data_dir 'sentences_allagree'"):
        load_domain(DomainDataArguments(dataset="org/phrasebank", config="sentences_allagree"))
    ds = load_domain(DomainDataArguments(dataset="org/phrasebank", revision="refs/convert/parquet",
                                         data_dir="sentences_allagree"))
    assert calls[-1] == ("org/phrasebank", None, {"split": "train", "data_dir": "sentences_allagree",
                                                  "revision": "refs/convert/parquet", "cache_dir": None})
    assert ds["input"] == ["profit rose", "loss widened"] and ds.features["label"].names == ["negative", "positive"]


# --------------------------------------------------------------------------- row filter


def _hospital_repo(tmp_path):
    """A Hub-style parquet repo holding several hospitals in one split, like Camelyon17-WILDS."""
    path = write_png(tmp_path / "raw" / "p.png")
    repo = tmp_path / "hospitals"
    (repo / "data").mkdir(parents=True)
    features = Features({"image": Image(), "label": Value("int64"), "center": Value("int64")})
    Dataset.from_dict(
        {"image": [path] * 6, "label": [0, 1, 0, 1, 1, 0], "center": [0, 3, 4, 2, 2, 1]}, features=features
    ).to_parquet(str(repo / "data" / "train-00000-of-00001.parquet"))
    return repo


def test_filter_keeps_rows_by_value_compared_as_text(tmp_path):
    repo = _hospital_repo(tmp_path)
    source = load_domain(DomainDataArguments(dataset=str(repo), filter_column="center", filter_values=["0", "3", "4"],
                                             cache_dir=str(tmp_path / "c")))
    target = load_domain(DomainDataArguments(dataset=str(repo), filter_column="center", filter_values=[2],
                                             cache_dir=str(tmp_path / "c")))
    assert len(source) == 3 and list(source["label"]) == [0, 1, 0]
    assert len(target) == 2 and list(target["label"]) == [1, 1]
    assert isinstance(target.features["input"], Image)


def test_filter_on_a_classlabel_label_column_narrows_the_classes(tmp_path):
    words = ["yes", "no", "zero", "one", "two", "_silence_"]
    features = Features({"file": Value("string"), "label": ClassLabel(names=words), "speaker_id": Value("string")})
    raw = Dataset.from_dict(
        {"file": [f"utterance {i}" for i in range(6)], "label": [0, 2, 3, 4, 5, 2],
         "speaker_id": ["a", "a", "b", "b", "c", "c"]},
        features=features,
    )
    raw.save_to_disk(str(tmp_path / "commands"))
    by_name = load_domain(DomainDataArguments(dataset=str(tmp_path / "commands"), filter_column="label",
                                              filter_values=["zero", "one", "two"]))
    assert by_name.features["label"].names == ["zero", "one", "two"]
    assert list(by_name["label"]) == [0, 1, 2, 0]  # re-indexed: "zero" was class 2 of 6
    by_id = load_domain(DomainDataArguments(dataset=str(tmp_path / "commands"), filter_column="label",
                                            filter_values=["2", "3"]))
    assert by_id.features["label"].names == ["zero", "one"] and len(by_id) == 3
    # Filtering another column keeps the full class list.
    speakers = load_domain(DomainDataArguments(dataset=str(tmp_path / "commands"), filter_column="speaker_id",
                                               filter_values=["b"]))
    assert speakers.features["label"].names == words and list(speakers["label"]) == [3, 4]


def test_filter_errors_name_the_problem_and_the_fix(tmp_path):
    repo = _hospital_repo(tmp_path)
    with pytest.raises(ValueError, match=r"filter_column 'hospital' not found.*available columns: \['image', 'label', 'center'\]"):
        load_domain(DomainDataArguments(dataset=str(repo), filter_column="hospital", filter_values=["1"],
                                        cache_dir=str(tmp_path / "c")))
    with pytest.raises(ValueError, match=r"No row of .* has center in \['7'\]; values present: 0, 1, 2, 3, 4\. Fix filter_values"):
        load_domain(DomainDataArguments(dataset=str(repo), filter_column="center", filter_values=["7"],
                                        cache_dir=str(tmp_path / "c")))


def test_filtered_domain_is_an_index_over_the_loaded_rows_not_a_copy(tmp_path):
    repo = _hospital_repo(tmp_path)
    plain = load_domain(DomainDataArguments(dataset=str(repo), cache_dir=str(tmp_path / "c")))
    filtered = load_domain(DomainDataArguments(dataset=str(repo), filter_column="center", filter_values=["2"],
                                               cache_dir=str(tmp_path / "c")))
    files = lambda ds: sorted(f["filename"] for f in ds.cache_files)  # noqa: E731
    assert files(filtered) == files(plain) and len(files(plain)) > 0  # no flattened copy written to the cache
    assert len(filtered) == 2 and filtered[0]["input"]["bytes"] == plain[3]["input"]["bytes"]


def test_label_names_name_integer_classes_and_are_checked(tmp_path):
    repo = _hospital_repo(tmp_path)
    named = load_domain(DomainDataArguments(dataset=str(repo), label_names=["normal", "tumor"], cache_dir=str(tmp_path / "c")))
    assert named.features["label"].names == ["normal", "tumor"] and list(named["label"]) == [0, 1, 0, 1, 1, 0]
    # With a row filter too; a split that lacks a class still gets every name.
    only_normal = load_domain(DomainDataArguments(dataset=str(repo), filter_column="center", filter_values=["1"],
                                                  label_names="normal,tumor", cache_dir=str(tmp_path / "c")))
    assert only_normal.features["label"].names == ["normal", "tumor"] and list(only_normal["label"]) == [0]
    with pytest.raises(ValueError, match=r"has 2 classes .* label_names has only 1: \['normal'\]"):
        load_domain(DomainDataArguments(dataset=str(repo), label_names=["normal"], cache_dir=str(tmp_path / "c")))
    with pytest.raises(ValueError, match="no label column"):
        load_domain(DomainDataArguments(dataset=str(repo), label_column=None, label_names=["normal", "tumor"],
                                        cache_dir=str(tmp_path / "c")))


def test_filter_on_a_plain_string_label_column_narrows_the_classes_too(tmp_path):
    csv = tmp_path / "reviews.csv"
    csv.write_text("text,label\ngreat,positive\nawful,negative\nmeh,neutral\nfine,positive\n")
    ds = load_domain(DomainDataArguments(dataset=str(csv), input_column="text", filter_column="label",
                                         filter_values=["negative", "positive"], cache_dir=str(tmp_path / "c")))
    assert ds.features["label"].names == ["negative", "positive"]
    assert list(ds["input"]) == ["great", "awful", "fine"] and list(ds["label"]) == [1, 0, 1]
