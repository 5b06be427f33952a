"""Find where LoRA goes, by looking at the loaded model.

Module names move between library versions (transformers 5.x renamed ViT's
``query/value`` to ``q_proj/v_proj``; timm fuses ``qkv``), so hf_transfer never
hard-codes them. It walks the model instead:

* ``attention``: every ``nn.Linear`` that lives inside an attention block (a module
  path component containing ``attn`` or ``attention``) — q/k/v/out projections of
  ViT, DeiT, BEiT, Swin, DINOv2, BERT-family encoders, wav2vec2/HuBERT/WavLM and timm ViTs;
* ``conv``: every ``nn.Conv1d``/``nn.Conv2d``/``nn.Conv3d`` (ResNets and ConvNeXt, the convolutional
  feature encoder of wav2vec2/HuBERT/WavLM, Whisper's conv stem), skipping grouped convolutions
  whose group count does not divide the LoRA rank (peft requires ``r % groups == 0``);
* ``all-linear``: every ``nn.Linear``;
* ``auto``: ``attention`` if the model has any, else ``conv``, else ``all-linear``.

Policies combine with ``+``: ``attention+conv`` also adapts a ViT's patch embedding, which is
where a colour or texture shift between domains first shows.

The classification head is always excluded: it is trained fully (``modules_to_save``).
"""

from __future__ import annotations

import functools
import inspect
import logging

from torch import nn

logger = logging.getLogger(__name__)

LORA_TARGET_POLICIES = ("auto", "attention", "conv", "all-linear")


def is_lora_policy(spec: str) -> bool:
    """``auto``, ``attention``, ``conv``, ``all-linear`` or a ``+`` combination of the last three."""
    parts = spec.split("+")
    return spec in LORA_TARGET_POLICIES or (len(parts) > 1 and all(p in LORA_TARGET_POLICIES[1:] for p in parts))


_CONVOLUTIONS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)  # the convolutions peft's LoRA implements


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
        if policy == "attention" and isinstance(module, nn.Linear) and _in_attention_block(name):
            selected.append(name)
        elif policy == "all-linear" and isinstance(module, nn.Linear):
            selected.append(name)
        elif policy == "conv" and isinstance(module, _CONVOLUTIONS):
            if module.groups > 1 and rank % module.groups != 0:
                logger.info("LoRA skips grouped conv %s (groups=%d does not divide r=%d)", name, module.groups, rank)
                continue
            selected.append(name)
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
        order: list[str] = []
    else:
        order = ["attention", "conv", "all-linear"] if policy == "auto" else [policy]
        selected = []
    for candidate in order:
        selected = _select(model, candidate, rank, exclude)
        if selected:
            break
    if selected:
        targets = _compact(model, selected)
        logger.info("LoRA targets (%s policy): %d modules, target_modules=%s", policy, len(selected), targets)
        return targets
    raise ValueError(
        f"No LoRA target found in {type(model).__name__} with policy {policy!r}. "
        "Pass module names explicitly (lora_target_modules='name1,name2') or pick another policy."
    )
