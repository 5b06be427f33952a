"""benchmarks/prepare_data.py on a tiny fake data root in the shared data's raw formats (no ../shared/data)."""

from __future__ import annotations

import csv
import gzip
import importlib.util
import json
import struct
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from hf_transfer.data import DomainDataArguments, load_domain

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "prepare_data.py"
SPEAKERS = ("jackson", "theo", "george", "nicolas", "lucas")
FSDD_INDICES = (0, 4, 5, 12)
PBC_CLASSES = ("basophil", "eosinophil", "neutrophil")
TECOM_COUNTS = {"basophil": 1, "eosinophil": 4, "neutrophil": 6}


@pytest.fixture(scope="module")
def prep():
    spec = importlib.util.spec_from_file_location("prepare_data", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["prepare_data"] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("prepare_data", None)


# --------------------------------------------------------------------------- fake raw data


def write_idx(path: Path, array: np.ndarray) -> None:
    """IDX: 0x0000, dtype code 0x08 (ubyte), ndim, big-endian uint32 dims, then the data."""
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def make_digits(root: Path) -> None:
    h5py = pytest.importorskip("h5py")
    rng = np.random.default_rng(0)
    folder = root / "digits"
    folder.mkdir(parents=True)
    labels = np.arange(30) % 10
    images = np.zeros((30, 28, 28), dtype=np.uint8)
    images[:, 4:24, 4:24] = rng.integers(1, 256, size=(30, 20, 20))  # ink only inside the 20x20 box
    write_idx(folder / "t10k-images-idx3-ubyte.gz", images)
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", labels)
    with h5py.File(folder / "usps.h5", "w") as h5:
        for split, n in (("train", 12), ("test", 6)):
            group = h5.create_group(split)
            group["data"] = rng.random((n, 256), dtype=np.float32)
            group["target"] = (np.arange(n) % 3).astype(np.int32)


def make_speech(root: Path) -> None:
    folder = root / "speech" / "fsdd" / "recordings"
    folder.mkdir(parents=True)
    tone = (0.1 * np.sin(np.arange(80) / 3.0)).astype(np.float32)
    for speaker in SPEAKERS:
        for digit in (0, 1):
            for index in FSDD_INDICES:
                sf.write(folder / f"{digit}_{speaker}_{index}.wav", tone, 8000, subtype="PCM_16")
    (folder / "README.txt").write_text("not a recording")


AT_SENTENCE = 'Sales rose 5 % to EUR 1,000 , "said" the CEO @ Acme , Inc .'


def make_finance(root: Path) -> None:
    sst = root / "finance" / "sst2"
    sst.mkdir(parents=True)
    train = [
        "1 a stirring , funny and \"finally\" transporting caf\u00e9 .",
        "0 too bad .",
        "1 see it .",
        "0 the worst , by far .",
    ]
    # A BOM, CRLF line ends, one latin-1 line (not UTF-8) and a blank line.
    raw = b"\xef\xbb\xbf" + "\r\n".join(train).encode("utf-8") + b"\r\n0 na\xefve and dull .\r\n\r\n"
    (sst / "stsa.binary.train").write_bytes(raw)
    (sst / "stsa.binary.test").write_text("1 good .\n0 bad , really .\n", encoding="utf-8")
    bank = root / "finance" / "financial_phrasebank"
    bank.mkdir(parents=True)
    lines = [f"{AT_SENTENCE}@positive"]
    lines += [f"Profit rose {i} % .@positive" for i in range(3)]
    lines += [f"Loss widened {i} % , sadly .@negative" for i in range(4)]
    lines += ["The company is based in Helsinki .@neutral"]
    (bank / "Sentences_AllAgree.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")


def make_medical(root: Path) -> None:
    for name in PBC_CLASSES:
        folder = root / "medical" / "pbc" / name
        folder.mkdir(parents=True)
        for i in range(5):
            Image.new("RGB", (8, 8), (i * 40, 10, 10)).save(folder / f"{name[:2].upper()}_{i}.jpg")
    tecom = root / "medical" / "tecom"
    for name, n in TECOM_COUNTS.items():
        (tecom / name).mkdir(parents=True)
        for i in range(n):
            Image.new("RGB", (6, 6), (10, i * 30, 10)).save(tecom / name / f"{name}{i}.png")
    (tecom / "LICENSE-GPL-3.0.txt").write_text("GPL")


@pytest.fixture
def raw(tmp_path: Path) -> Path:
    root = tmp_path / "raw"
    make_speech(root)
    make_finance(root)
    make_medical(root)
    return root


def files_by_class(folder: Path) -> dict[str, list[Path]]:
    return {d.name: sorted(d.iterdir()) for d in sorted(folder.iterdir()) if d.is_dir()}


def load(path: Path, tmp_path: Path, split: str = "train", **kwargs):
    return load_domain(DomainDataArguments(dataset=str(path), cache_dir=str(tmp_path / "cache"), **kwargs), split=split)


# --------------------------------------------------------------------------- split helper


def test_stratified_split_is_exact_stratified_and_seeded(prep):
    labels = ["a"] * 980 + ["b"] * 1135 + ["c"] * 7885
    train, test = prep.stratified_split(labels, 0.1, seed=3)
    assert len(test) == 1000 and len(train) == 9000
    assert not set(train) & set(test)
    assert Counter(labels[i] for i in test) == {"a": 98, "b": 114, "c": 788}
    again = prep.stratified_split(labels, 0.1, seed=3)
    assert all(np.array_equal(x, y) for x, y in zip((train, test), again))
    assert not np.array_equal(test, prep.stratified_split(labels, 0.1, seed=4)[1])


def test_stratified_split_singleton_goes_to_test_and_small_classes_in_both(prep):
    labels = ["x"] + ["y"] * 2 + ["z"] * 9
    train, test = prep.stratified_split(labels, 0.5, seed=0)
    assert Counter(labels[i] for i in test)["x"] == 1
    assert "x" not in {labels[i] for i in train}
    for name in ("y", "z"):
        assert name in {labels[i] for i in train} and name in {labels[i] for i in test}


# --------------------------------------------------------------------------- pairs


def test_digits_crop_layout_and_loader(prep, tmp_path):
    root = tmp_path / "raw"
    make_digits(root)
    out = prep.prepare("digits", root, tmp_path / "out", printer=None)
    mnist = {s: files_by_class(out / "mnist" / s) for s in ("train", "test")}
    assert sorted(mnist["train"]) == sorted(mnist["test"]) == [str(d) for d in range(10)]
    assert sum(map(len, mnist["train"].values())) + sum(map(len, mnist["test"].values())) == 30
    first = Image.open(mnist["train"]["0"][0])
    assert first.size == (20, 20) and first.mode == "L"
    # the crop keeps exactly the 20x20 box: a fully inked box stays fully inked
    assert np.asarray(first).min() > 0
    usps = {s: files_by_class(out / "usps" / s) for s in ("train", "test")}
    assert {k: len(v) for k, v in usps["train"].items()} == {"0": 4, "1": 4, "2": 4}
    assert {k: len(v) for k, v in usps["test"].items()} == {"0": 2, "1": 2, "2": 2}
    image = Image.open(usps["test"]["1"][0])
    assert image.size == (16, 16) and image.mode == "L"
    ds = load(out / "mnist", tmp_path, split="test")
    assert ds.features["label"].names == [str(d) for d in range(10)]
    assert len(load(out / "usps", tmp_path, split="train")) == 12


def test_speech_speaker_and_index_split(prep, raw, tmp_path):
    out = prep.prepare("speech", raw, tmp_path / "out", source_speakers="jackson,theo", printer=None)
    for domain, speakers in (("source", {"jackson", "theo"}), ("target", {"george", "nicolas"})):
        for split in ("train", "test"):
            by_class = files_by_class(out / domain / split)
            assert sorted(by_class) == ["0", "1"]
            for digit, files in by_class.items():
                parts = [f.stem.split("_") for f in files]
                assert {p[0] for p in parts} == {digit}
                assert {p[1] for p in parts} == speakers
                indices = {int(p[2]) for p in parts}
                assert indices == ({0, 4} if split == "test" else {5, 12})
    copied = out / "source" / "test" / "0" / "0_jackson_0.wav"
    assert copied.read_bytes() == (raw / "speech/fsdd/recordings/0_jackson_0.wav").read_bytes()
    ds = load(out / "target", tmp_path, split="test")
    assert len(ds) == 8 and ds.features["label"].names == ["0", "1"]


def test_speech_unknown_speaker_is_a_clear_error(prep, raw, tmp_path):
    with pytest.raises(ValueError, match=r"nobody.*available speakers"):
        prep.prepare("speech", raw, tmp_path / "out", target_speakers=["nobody"], printer=None)
    with pytest.raises(ValueError, match="both source and target"):
        prep.prepare("speech", raw, tmp_path / "out", target_speakers="theo", printer=None)
    assert not (tmp_path / "out" / "speech").exists()


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def test_finance_csvs(prep, raw, tmp_path):
    lines: list[str] = []
    out = prep.prepare("finance", raw, tmp_path / "out", printer=lines.append)
    sst = read_csv(out / "sst2_train.csv")
    assert [r["label"] for r in sst] == ["positive", "negative", "positive", "negative", "negative"]
    assert sst[0]["text"] == 'a stirring , funny and "finally" transporting caf\u00e9 .'  # BOM gone, UTF-8 kept
    assert sst[-1]["text"] == "na\u00efve and dull ."  # the latin-1 line
    assert any("1 line(s) not UTF-8" in line for line in lines)
    bank = read_csv(out / "phrasebank_train.csv") + read_csv(out / "phrasebank_test.csv")
    assert Counter(r["label"] for r in bank) == {"positive": 4, "negative": 4}
    assert AT_SENTENCE in {r["text"] for r in bank}  # split on the last '@'
    assert not any("Helsinki" in r["text"] for r in bank)  # neutral excluded
    for split in ("train", "test"):
        assert Counter(r["label"] for r in read_csv(out / f"phrasebank_{split}.csv")) == {"positive": 2, "negative": 2}
    ds = load(out / "phrasebank_train.csv", tmp_path, input_column="text")
    assert ds.features["label"].names == ["negative", "positive"] and len(ds) == 4
    ds = load(out / "sst2_train.csv", tmp_path, input_column="text", split=str(out / "sst2_test.csv"))
    assert ds["input"] == ["good .", "bad , really ."]
    assert "finance/sst2/train: 5 [negative=3 positive=2]" in lines


def test_medical_layout_and_tecom_singleton(prep, raw, tmp_path):
    out = prep.prepare("medical", raw, tmp_path / "out", printer=None)
    pbc = {s: files_by_class(out / "pbc" / s) for s in ("train", "test")}
    assert {k: len(v) for k, v in pbc["train"].items()} == dict.fromkeys(PBC_CLASSES, 4)
    assert {k: len(v) for k, v in pbc["test"].items()} == dict.fromkeys(PBC_CLASSES, 1)
    assert all(f.suffix == ".jpg" for files in pbc["test"].values() for f in files)
    tecom = {s: files_by_class(out / "tecom" / s) for s in ("train", "test")}
    assert sorted(tecom["test"]) == sorted(TECOM_COUNTS)
    assert sorted(tecom["train"]) == ["eosinophil", "neutrophil"]  # the single basophil is test only
    counts = {k: len(tecom["train"].get(k, [])) + len(v) for k, v in tecom["test"].items()}
    assert counts == TECOM_COUNTS
    assert not list(out.rglob("*.txt"))
    assert load(out / "tecom", tmp_path, split="train").features["label"].names == ["eosinophil", "neutrophil"]
    assert len(load(out / "pbc", tmp_path, split="test")) == 3


# --------------------------------------------------------------------------- idempotency, atomicity, errors


def test_second_run_skips_and_force_rebuilds(prep, raw, tmp_path):
    out = tmp_path / "out"
    final = prep.prepare("medical", raw, out, printer=None)
    marker = final / ".complete"
    assert json.loads(marker.read_text())["options"]["seed"] == 0
    before = (marker.stat().st_mtime_ns, final.stat().st_ino)
    lines: list[str] = []
    assert prep.prepare("medical", raw, out, printer=lines.append) == final
    assert (marker.stat().st_mtime_ns, final.stat().st_ino) == before
    assert lines and all("up to date" in line for line in lines)
    assert prep.main(["--data-root", str(raw), "--out", str(out), "--pairs", "medical", "--force"]) == 0
    assert final.stat().st_ino != before[1]
    prep.prepare("medical", raw, out, seed=1, printer=None)  # other options: rebuilt
    assert json.loads(marker.read_text())["options"]["seed"] == 1
    assert sorted(p.name for p in out.iterdir()) == ["medical"]  # no temporary folders left


def test_interrupted_run_leaves_nothing_that_looks_complete(prep, raw, tmp_path, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("interrupted")

    monkeypatch.setattr(prep, "_copy", boom)
    with pytest.raises(RuntimeError):
        prep.prepare("medical", raw, tmp_path / "out", printer=None)
    assert list((tmp_path / "out").iterdir()) == []


def test_missing_input_is_a_clear_error(prep, tmp_path, capsys):
    with pytest.raises(FileNotFoundError, match=r"SST-2 train file not found: .*stsa\.binary\.train"):
        prep.prepare("finance", tmp_path / "nowhere", tmp_path / "out", printer=None)
    assert prep.main(["--data-root", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out")]) == 1
    assert "not found" in capsys.readouterr().err
