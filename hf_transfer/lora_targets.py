"""Find where LoRA goes, by looking at the loaded model.

Module names move between library versions (transformers 5.x renamed ViT's
``query/value`` to ``q_proj/v_proj``; timm fuses ``qkv``), so hf_transfer never
hard-codes them. It walks the model instead:

* ``attention``: every ``nn.Linear`` that lives inside an attention block (a module
  path component containing ``attn`` or ``attention``) — q/k/v/out projections of
  ViT, DeiT, BEiT, Swin, DINOv2, BERT-family encoders, wav2vec2/HuBERT/WavLM and timm ViTs;
* ``conv``: every ``nn.Conv1d``/``nn.Conv2d``/``nn.Conv3d`` (ResNets and ConvNeXt, the convolutional
  feature encoder of wav2vec2/HuBERT/WavLM), skipping grouped convolutions whose group count does
  not divide the LoRA rank (peft requires ``r % groups == 0``);
* ``pointwise``: every ungrouped convolution whose kernel is 1 in every dimension (1×1 ``Conv2d``,
  kernel-1 ``Conv1d``): the expansion/projection convs of MobileNet and EfficientNet blocks, their
  head conv and their squeeze-excite convs;
* ``all-linear``: every ``nn.Linear``;
* ``auto``: ``attention`` if the model has any, plus ``pointwise`` if it is built from depthwise-separable
  convolutions (it has depthwise convs, ``groups == in_channels``); ``pointwise`` alone for such a CNN;
  else ``conv``, else ``all-linear``.

Why ``pointwise`` for depthwise-separable CNNs (EfficientNet-Lite0: 3.15 M of its 3.33 M conv weights
are in 1×1 convs, 0.18 M in depthwise convs, 864 in the 3×3 stem):

* a depthwise conv has ``groups == channels`` (32 to 1152 in EfficientNet-Lite0) and peft's LoRA needs
  ``r % groups == 0``, so ``conv`` skips them at the usual ranks, but adapts the first one (32 channels)
  at ``r=32``: the targets would change with the rank, and peft cannot merge a LoRA on a grouped conv
  (``merge_and_unload`` raises ``NotImplementedError``, so ``load_adapted(merge=True)`` would fail).
  ``pointwise`` never touches them, at any rank;
* the pointwise convs carry almost all the weights and all the mixing between channels, which is what
  an adapter has to change; the depthwise convs only filter each channel spatially;
* BatchNorm is not a LoRA target (it has no weight matrix); its running statistics still update in
  training mode, and its affine parameters stay frozen with the rest of the base model.

``conv`` remains the choice for a colour shift on such a CNN: it adds the 3×3 stem, which sees the RGB
input (and at ``r=32`` that first depthwise conv).

Speech transformers (wav2vec2, HuBERT, Whisper's encoder) get ``attention`` from ``auto``: their
convolutions are a dense stem, not depthwise separable. ``attention+conv`` adds wav2vec2's and HuBERT's
convolutional feature encoder, where an accent or microphone shift first shows. Whisper's stem (two
kernel-3 ``Conv1d`` on the log-mel frames) cannot take a LoRA: ``WhisperEncoder.forward`` reads
``self.conv1.stride``, which peft's LoRA wrapper does not expose, so the forward would crash. Every
policy skips a module whose parent reads such an attribute of it (anything but ``weight``, ``bias``,
``in_features``, ``out_features``), and says so in the log.

Policies combine with ``+``: ``attention+conv`` also adapts a ViT's patch embedding, which is
where a colour or texture shift between domains first shows.

The classification head is always excluded: it is trained fully (``modules_to_save``).
"""

from __future__ import annotations

import functools
import inspect
import logging
import re

from torch import nn

logger = logging.getLogger(__name__)

LORA_TARGET_POLICIES = ("auto", "attention", "conv", "pointwise", "all-linear")


def is_lora_policy(spec: str) -> bool:
    """``auto``, ``attention``, ``conv``, ``pointwise``, ``all-linear`` or a ``+`` combination of the last four."""
    parts = spec.split("+")
    return spec in LORA_TARGET_POLICIES or (len(parts) > 1 and all(p in LORA_TARGET_POLICIES[1:] for p in parts))


_CONVOLUTIONS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)  # the convolutions peft's LoRA implements


def _is_pointwise(module: nn.Module) -> bool:
    return isinstance(module, _CONVOLUTIONS) and module.groups == 1 and all(k == 1 for k in module.kernel_size)


def _is_depthwise(module: nn.Module) -> bool:
    return isinstance(module, _CONVOLUTIONS) and module.groups > 1 and module.groups == module.in_channels


def _in_attention_block(name: str) -> bool:
    return any("attn" in part.lower() or "attention" in part.lower() for part in name.split(".")[:-1])


@functools.lru_cache(maxsize=None)
def _calls_fused_attention(cls: type) -> bool:
    try:
        return "multi_head_attention_forward" in inspect.getsource(cls)
    except (OSError, TypeError):
        return False


def _bypassed(model: nn.Module, name: str) -> bool:
    """True for Linear layers whose parent hands their ``.weight`` to ``F.multi_head_attention_forward``.

    ``nn.MultiheadAttention`` and WavLM's attention never call these modules, so a LoRA layer there
    would silently do nothing.
    """
    parent_name = name.rpartition(".")[0]
    parent = model.get_submodule(parent_name) if parent_name else model
    return isinstance(parent, nn.MultiheadAttention) or _calls_fused_attention(type(parent))


# What peft's LoRA wrappers (BaseTunerLayer) expose of the layer they wrap.
_WRAPPER_ATTRIBUTES = frozenset({"weight", "bias", "in_features", "out_features"})


@functools.lru_cache(maxsize=None)
def _attributes_read(cls: type, child: str) -> frozenset[str]:
    """Attributes of ``self.<child>`` that ``cls.forward`` reads (``self.conv1.stride[0]`` -> ``stride``).

    Only ``forward``: other methods (timm's ``feature_info`` reads ``self.conv_pwl.in_channels``) never
    run on a wrapped model's forward pass.
    """
    try:
        source = inspect.getsource(cls.forward)
    except (OSError, TypeError):
        return frozenset()
    return frozenset(re.findall(rf"self\.{re.escape(child)}\.([A-Za-z_]\w*)\b(?!\s*\()", source))


def _read_through_wrapper(model: nn.Module, name: str) -> set[str]:
    """Attributes a LoRA wrapper around ``name`` would hide from the parent that reads them."""
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    return set(_attributes_read(type(parent), child)) - _WRAPPER_ATTRIBUTES


def _is_under(name: str, prefixes: list[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _select(model: nn.Module, policy: str, rank: int, exclude: list[str]) -> list[str]:
    selected = []
    for name, module in model.named_modules():
        if not name or _is_under(name, exclude):
            continue
        if isinstance(module, nn.Linear) and _bypassed(model, name):
            logger.info("LoRA skips %s: its parent uses fused multi-head attention and never calls it", name)
            continue
        if isinstance(module, (nn.Linear, *_CONVOLUTIONS)) and (hidden := _read_through_wrapper(model, name)):
            logger.info("LoRA skips %s: its parent reads its %s, which peft's LoRA wrapper does not expose",
                        name, ", ".join(sorted(hidden)))
            continue
        if policy == "attention" and isinstance(module, nn.Linear) and _in_attention_block(name):
            selected.append(name)
        elif policy == "all-linear" and isinstance(module, nn.Linear):
            selected.append(name)
        elif policy == "conv" and isinstance(module, _CONVOLUTIONS):
            if module.groups > 1 and rank % module.groups != 0:
                logger.info("LoRA skips grouped conv %s (groups=%d does not divide r=%d)", name, module.groups, rank)
                continue
            selected.append(name)
        elif policy == "pointwise" and _is_pointwise(module):
            selected.append(name)
    return selected


def _auto(model: nn.Module, rank: int, exclude: list[str]) -> list[str]:
    """``attention`` (+ ``pointwise`` for depthwise-separable convs), else ``conv``, else ``all-linear``."""
    selected = _select(model, "attention", rank, exclude)
    if any(_is_depthwise(m) for n, m in model.named_modules() if n and not _is_under(n, exclude)):
        selected = sorted(set(selected) | set(_select(model, "pointwise", rank, exclude)))
    for fallback in ("conv", "all-linear"):
        if selected:
            break
        selected = _select(model, fallback, rank, exclude)
    return selected


def _compact(model: nn.Module, selected: list[str]) -> list[str]:
    """Shortest name suffixes that pick out exactly ``selected`` under peft's matching rule.

    peft matches a target ``t`` to a module ``key`` when ``key == t`` or
    ``key.endswith("." + t)``, so ``["q_proj", "v_proj"]`` or ``["attention.output.dense"]``
    are portable across depths and checkpoints, where a list of full names is not.
    """
    chosen = set(selected)
    all_names = [name for name, _ in model.named_modules() if name]

    def matches(suffix: str) -> list[str]:
        return [n for n in all_names if n == suffix or n.endswith("." + suffix)]

    suffixes: set[str] = set()
    for name in selected:
        parts = name.split(".")
        for length in range(1, len(parts) + 1):
            suffix = ".".join(parts[-length:])
            if set(matches(suffix)) <= chosen:
                suffixes.add(suffix)
                break
    return sorted(suffixes)


def discover_lora_targets(
    model: nn.Module,
    policy: str = "auto",
    *,
    rank: int = 8,
    exclude: list[str] | None = None,
) -> list[str]:
    """Return ``target_modules`` for a peft ``LoraConfig`` on ``model``.

    Args:
        model: the loaded backbone (before peft wrapping).
        policy: one of :data:`LORA_TARGET_POLICIES`.
        rank: the LoRA rank, to skip grouped convolutions it cannot serve.
        exclude: module names never to adapt (the classifier head).

    Raises:
        ValueError: the policy is unknown or finds nothing to adapt.
    """
    if not is_lora_policy(policy):
        raise ValueError(f"Unknown LoRA target policy {policy!r}; choose one of {LORA_TARGET_POLICIES} or list module names.")
    exclude = list(exclude or [])
    if "+" in policy:
        parts = {part: _select(model, part, rank, exclude) for part in policy.split("+")}
        for part, names in parts.items():
            if not names:
                logger.warning("LoRA policy %r: its %r part finds nothing in %s.", policy, part, type(model).__name__)
        selected = sorted({name for names in parts.values() for name in names})
    elif policy == "auto":
        selected = _auto(model, rank, exclude)
    else:
        selected = _select(model, policy, rank, exclude)
    if selected:
        targets = _compact(model, selected)
        logger.info("LoRA targets (%s policy): %d modules, target_modules=%s", policy, len(selected), targets)
        return targets
    raise ValueError(
        f"No LoRA target found in {type(model).__name__} with policy {policy!r}. "
        "Pass module names explicitly (lora_target_modules='name1,name2') or pick another policy."
    )
