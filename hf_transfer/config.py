"""Train configs: a YAML/JSON file with the sections ``model``, ``source``, ``target``, ``training`` and
``pretraining``, plus ``--section.field value`` overrides, parsed by ``HfArgumentParser`` into their dataclasses.

``hf-transfer train`` and ``hf-transfer sweep`` (each candidate) read their configs here; the CLI re-exports
:func:`parse_train_arguments`. String values may use ``${VAR}`` or ``${VAR:-default}`` (environment variables).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from .pipeline import ModelArguments, SourceDataArguments, SourcePretrainingArguments, TargetDataArguments
    from .training_args import DomainAdaptationArguments

    TrainArguments = tuple[
        ModelArguments, SourceDataArguments, TargetDataArguments, DomainAdaptationArguments, SourcePretrainingArguments
    ]

SECTIONS = ("model", "source", "target", "training", "pretraining")
_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def section_classes() -> dict[str, type]:
    """Each config section's dataclass."""
    from .pipeline import ModelArguments, SourceDataArguments, SourcePretrainingArguments, TargetDataArguments
    from .training_args import DomainAdaptationArguments

    return {
        "model": ModelArguments,
        "source": SourceDataArguments,
        "target": TargetDataArguments,
        "training": DomainAdaptationArguments,
        "pretraining": SourcePretrainingArguments,
    }


def expand_env(value: Any, where: str = "config") -> Any:
    """Replace ``${VAR}`` / ``${VAR:-default}`` in strings (recursively); an unset VAR without default is an error."""
    if isinstance(value, dict):
        return {k: expand_env(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [expand_env(v, where) for v in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match) -> str:
        name, default = match.group(1), match.group(2)
        if name in os.environ and os.environ[name] != "":
            return os.environ[name]
        if default is not None:
            return default
        raise ValueError(
            f"{where} uses ${{{name}}} but the environment variable {name} is not set: export {name}=... "
            f"(see the recipe's README) or override the field with --{where} VALUE."
        )

    return _ENV_REFERENCE.sub(substitute, value)


def load_config(path: str | Path) -> dict[str, dict[str, Any]]:
    """Read a YAML/JSON config with the sections :data:`SECTIONS`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Config file {path} does not exist.")
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        config = json.loads(text)
    else:
        import yaml

        config = yaml.safe_load(text) or {}
    unknown = set(config) - set(SECTIONS)
    if unknown:
        raise ValueError(f"Unknown config section(s) {sorted(unknown)} in {path}; expected {list(SECTIONS)}.")
    sections = {section: expand_env(dict(config.get(section) or {}), section) for section in SECTIONS}
    _resolve_relative_to_config(sections["model"], "model_name_or_path", path.parent)
    return sections


def _resolve_relative_to_config(section: dict[str, Any], key: str, config_dir: Path) -> None:
    """A relative path that exists next to the config (e.g. a recipe's ``backbone/`` folder) wins over a Hub id."""
    value = section.get(key)
    if isinstance(value, str) and value and not os.path.isabs(value) and not os.path.exists(value):
        candidate = config_dir / value
        if candidate.exists():
            section[key] = str(candidate.resolve())


def _to_argv(values: dict[str, Any]) -> list[str]:
    argv: list[str] = []
    for key, value in values.items():
        if value is None:
            continue
        if isinstance(value, dict):
            value = ",".join(f"{k}={v}" for k, v in value.items())
        if isinstance(value, (list, tuple)):
            argv += [f"--{key}", *map(str, value)]
        else:
            argv += [f"--{key}", str(value)]
    return argv


def parse_train_arguments(config_path: str | None, overrides: list[str]) -> TrainArguments:
    """Config file + ``--section.field value`` overrides → (model, source, target, training, pretraining)."""
    from transformers import HfArgumentParser

    config = load_config(config_path) if config_path else {s: {} for s in SECTIONS}
    extra: dict[str, list[str]] = {s: [] for s in SECTIONS}
    i = 0
    while i < len(overrides):
        token = overrides[i]
        if not token.startswith("--") or "." not in token:
            raise ValueError(f"Override {token!r} must look like --section.field value (sections: {list(SECTIONS)}).")
        section, _, name = token[2:].partition(".")
        if "=" in name:
            name, _, value = name.partition("=")
            values = [value]
            i += 1
        else:
            values = []
            i += 1
            while i < len(overrides) and not overrides[i].startswith("--"):
                values.append(overrides[i])
                i += 1
        if section not in SECTIONS:
            raise ValueError(f"Unknown section {section!r} in {token}; use one of {list(SECTIONS)}.")
        config[section].pop(name, None)
        extra[section] += [f"--{name}", *values] if values else [f"--{name}"]
    parsed = []
    for section, cls in section_classes().items():
        parser = HfArgumentParser(cls)
        argv = _to_argv(config[section]) + extra[section]
        try:
            (args,) = parser.parse_args_into_dataclasses(args=argv, look_for_args_file=False)
        except SystemExit as exc:
            raise ValueError(f"Invalid or missing arguments in section {section!r}: {' '.join(argv)}") from exc
        parsed.append(args)
    return tuple(parsed)
