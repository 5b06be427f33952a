"""Train configs: a YAML/JSON file with the sections ``model``, ``source``, ``target``, ``training`` and
``pretraining``, plus ``--section.field value`` overrides, parsed by ``HfArgumentParser`` into their dataclasses.
``null`` (or ``none``) sets a field to None; an unknown field is named with its section and a close match.

``hf-transfer train`` and ``hf-transfer sweep`` (each candidate) read their configs here; the CLI re-exports
:func:`parse_train_arguments`. String values may use ``${VAR}`` or ``${VAR:-default}`` (environment variables).
"""

from __future__ import annotations

import dataclasses
import difflib
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
SOURCES = "sources"
"""A list of labelled sources (multi-source adaptation), each with the fields of ``source``, in place of ``source``."""
_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def section_classes() -> dict[str, type]:
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
    unknown = set(config) - set(SECTIONS) - {SOURCES}
    if unknown:
        raise ValueError(f"Unknown config section(s) {sorted(unknown)} in {path}; expected {list(SECTIONS)} "
                         f"(or '{SOURCES}', a list of sources, in place of 'source').")
    sections = {section: expand_env(dict(config.get(section) or {}), section) for section in SECTIONS}
    if config.get(SOURCES) is not None:
        sections[SOURCES] = _source_list(config[SOURCES], sections["source"], path)
    _resolve_relative_to_config(sections["model"], "model_name_or_path", path.parent)
    return sections


def _source_list(value: Any, single: dict[str, Any], path: Path) -> list[dict[str, Any]]:
    """The ``sources:`` list: mappings with the fields of ``source`` and a description each, and no ``source``."""
    if single:
        raise ValueError(f"{path} has both 'source' and '{SOURCES}': list every source under '{SOURCES}' (one entry "
                         "per labelled source) and drop 'source'.")
    if not isinstance(value, list) or not value or not all(isinstance(entry, dict) for entry in value):
        raise ValueError(f"'{SOURCES}' in {path} must be a non-empty list of mappings with the fields of 'source' "
                         "(dataset, split, description, ...).")
    entries = [expand_env(dict(entry), f"{SOURCES}[{k}]") for k, entry in enumerate(value)]
    missing = [k for k, entry in enumerate(entries) if not entry.get("description")]
    if len(entries) > 1 and missing:
        raise ValueError(f"{SOURCES}[{missing[0]}] in {path} has no description: give every source one (e.g. "
                         "'speaker jackson'); the model card and the per-source results are named by it.")
    return entries


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


NULL_WORDS = ("null", "~")
"""Override values that set a field to None; ``none`` does too, for fields that have no 'none' value of their own."""


def _accepts_none_word(field: dataclasses.Field) -> bool:
    """Fields whose help names 'none' as one of their values (report_to, the augmentations, label_column) read the
    word ``none`` as itself; everywhere else ``none`` means null."""
    return "'none'" in str(field.metadata.get("help", "")).lower()


def _is_null(field: dataclasses.Field | None, values: list[str]) -> bool:
    if len(values) != 1:
        return False
    word = values[0].strip().lower()
    return word in NULL_WORDS or (word == "none" and field is not None and not _accepts_none_word(field))


def _fields(cls: type) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(cls) if f.init}


def _optional(cls: type, name: str) -> bool:
    import typing

    try:
        hint = typing.get_type_hints(cls)[name]
    except Exception:  # an annotation that cannot be resolved: let the dataclass decide
        return True
    return type(None) in typing.get_args(hint)


def _check_field_names(section: str, names: dict[str, str], classes: dict[str, type]) -> None:
    """Every field named in ``section`` exists; an unknown one is named with its section and the closest match."""
    known = _fields(classes[section])
    for name, origin in names.items():
        plain = name.replace("-", "_")
        if plain in known or (plain.startswith("no_") and plain[3:] in known):
            continue
        elsewhere = [s for s, cls in classes.items() if s != section and plain in _fields(cls)]
        close = difflib.get_close_matches(plain, list(known), n=1, cutoff=0.6)
        if elsewhere:
            hint = " It is a field of " + " and ".join(f"'{s}' (--{s}.{plain})" for s in elsewhere) + "."
        elif close:
            hint = f" Did you mean {section}.{close[0]} (--{section}.{close[0]})?"
        else:
            hint = ""
        raise ValueError(
            f"Unknown field {section}.{name} ({origin}).{hint} `hf-transfer train --help-fields` lists every field "
            "of every section."
        )


def _raise_parse_error(section: str):
    def error(message: str):
        message = re.sub(r"--([A-Za-z_][\w-]*)", lambda m: f"--{section}.{m.group(1).replace('-', '_')}", message)
        message = re.sub(r"(--[\w.]+)(/\1)+", r"\1", message)  # --x/--x: the dash alias, renamed alike
        hint = ""
        if "required" in message:
            hint = f" Set it in the config's '{section}' section or pass it on the command line."
        raise ValueError(f"Section '{section}': {message}.{hint}")

    return error


def parse_train_arguments(
    config_path: str | None, overrides: list[str], *, allow_missing_source: bool = False
) -> TrainArguments:
    """Config file + ``--section.field value`` overrides → (model, source, target, training, pretraining).

    ``null`` (or ``~``; ``none`` for fields without a 'none' value of their own) sets a field to None, in the
    config file as on the command line. An unknown field is an error naming its section and the closest field.
    With ``allow_missing_source``, a config with no ``source`` section at all gives ``None`` for it: a source-free
    run (``hf-transfer adapt``).
    """
    from transformers import HfArgumentParser

    config = load_config(config_path) if config_path else {s: {} for s in SECTIONS}
    classes = section_classes()
    origin = f"in {config_path}" if config_path else "in the config"
    named: dict[str, dict[str, str]] = {s: {name: origin for name in config[s]} for s in SECTIONS}
    nulls: dict[str, set[str]] = {s: {name for name, value in config[s].items() if value is None} for s in SECTIONS}
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
            close = difflib.get_close_matches(section, SECTIONS, n=1)
            hint = f" Did you mean --{close[0]}.{name}?" if close else ""
            raise ValueError(f"Unknown section {section!r} in {token}; use one of {list(SECTIONS)}.{hint}")
        named[section][name] = f"on the command line: {token}"
        config[section].pop(name, None)
        if _is_null(_fields(classes[section]).get(name.replace("-", "_")), values):
            nulls[section].add(name)
            continue
        nulls[section].discard(name)
        extra[section] += [f"--{name}", *values] if values else [f"--{name}"]
    parsed = []
    for section, cls in classes.items():
        if section == "source" and SOURCES in config:
            parsed.append(_parse_sources(config[SOURCES], extra["source"], nulls["source"], named["source"], classes))
            continue
        if section == "source" and allow_missing_source and not named["source"]:
            parsed.append(None)
            continue
        _check_field_names(section, named[section], classes)
        fields = _fields(cls)
        for name in list(nulls[section]):
            config[section].pop(name, None)
            if not _optional(cls, name.replace("-", "_")):
                default = fields[name.replace("-", "_")].default
                shown = "" if default is dataclasses.MISSING else f" (leave it out for the default, {default!r})"
                raise ValueError(f"{section}.{name} cannot be null: it needs a value{shown}.")
        parser = HfArgumentParser(cls)
        parser.error = _raise_parse_error(section)  # type: ignore[method-assign]
        argv = _to_argv(config[section]) + extra[section]
        (args,) = parser.parse_args_into_dataclasses(args=argv, look_for_args_file=False)
        # A null field whose default is not None: rebuild the dataclass with None (its checks run again)
        reset = {n.replace("-", "_"): None for n in nulls[section] if getattr(args, n.replace("-", "_")) is not None}
        if reset:
            args = dataclasses.replace(args, **reset)
        parsed.append(args)
    return tuple(parsed)


def _parse_sources(entries: list[dict[str, Any]], extra: list[str], nulls: set[str], overrides: dict[str, str],
                   classes: dict[str, type]) -> Any:
    """Each ``sources:`` entry as ``SourceDataArguments``; a ``--source.field`` override applies to every entry.

    One entry is one source (returned as it is); several are returned as a list, in domain-id order.
    """
    from transformers import HfArgumentParser

    cls = classes["source"]
    parsed = []
    for k, entry in enumerate(entries):
        _check_field_names("source", {**{name: f"in {SOURCES}[{k}]" for name in entry}, **overrides}, classes)
        values = {name: value for name, value in entry.items() if value is not None and name not in nulls}
        parser = HfArgumentParser(cls)
        parser.error = _raise_parse_error(f"{SOURCES}[{k}]")  # type: ignore[method-assign]
        (args,) = parser.parse_args_into_dataclasses(args=_to_argv(values) + extra, look_for_args_file=False)
        reset = {n.replace("-", "_"): None for n in nulls if getattr(args, n.replace("-", "_")) is not None}
        parsed.append(dataclasses.replace(args, **reset) if reset else args)
    return parsed[0] if len(parsed) == 1 else parsed


# Help of fields whose meaning `hf-transfer train` sets itself (transformers' own help says something else).
