"""``hf-transfer``: train | evaluate | demo | push.

``hf-transfer train CONFIG.yaml --training.max_steps 200 --source.dataset data/a`` reads a YAML
(or JSON) file with the sections ``model``, ``source``, ``target``, ``training`` and (optional)
``pretraining``; each section is parsed by ``HfArgumentParser`` into its dataclass, and
``--section.field value`` overrides any field. ``hf-transfer train --help-fields`` lists every field.
String values may use ``${VAR}`` or ``${VAR:-default}`` (environment variables), so a recipe can
point at data whose location differs per machine; ``null`` (or ``none``) sets a field to None.

Every command reports an expected failure (a bad config, missing data, the Hub out of reach, a non-finite
loss, Ctrl-C) as one paragraph on stderr and a non-zero exit code (2: the request cannot run as given;
1: the run failed; 130: interrupted); ``--debug`` or ``HF_TRANSFER_DEBUG=1`` adds the traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
import logging
import os
import re
import sys
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE, Failure, debug_requested, network_cause, unreachable_message

if TYPE_CHECKING:  # pragma: no cover
    from .pipeline import ModelArguments, SourceDataArguments, SourcePretrainingArguments, TargetDataArguments
    from .training_args import DomainAdaptationArguments

    TrainArguments = tuple[
        ModelArguments, SourceDataArguments, TargetDataArguments, DomainAdaptationArguments, SourcePretrainingArguments
    ]

SECTIONS = ("model", "source", "target", "training", "pretraining")
_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _section_classes() -> dict[str, type]:
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


def parse_train_arguments(config_path: str | None, overrides: list[str]) -> TrainArguments:
    """Config file + ``--section.field value`` overrides → (model, source, target, training, pretraining).

    ``null`` (or ``~``; ``none`` for fields without a 'none' value of their own) sets a field to None, in the
    config file as on the command line. An unknown field is an error naming its section and the closest field.
    """
    from transformers import HfArgumentParser

    config = load_config(config_path) if config_path else {s: {} for s in SECTIONS}
    classes = _section_classes()
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


# Help of fields whose meaning `hf-transfer train` sets itself (transformers' own help says something else).
FIELD_HELP = {
    ("training", "resume_from_checkpoint"): "Resume this run: 'last' (or 'true') for the newest complete "
    "checkpoint-<step> folder in output_dir, or the path of a checkpoint folder. Unset (or 'false'/null): start fresh.",
    ("training", "do_train"): "Ignored: `hf-transfer train` always trains.",
    ("training", "do_eval"): "Ignored: `hf-transfer train` evaluates each domain that has an eval_split, after training "
    "(and during it with eval_strategy).",
    ("training", "do_predict"): "Ignored by `hf-transfer train`; use `hf-transfer evaluate` on a saved model.",
}


def help_fields_text() -> str:
    """Every field of every section, under the flag that sets it (``--model.model_name_or_path``)."""
    from transformers import HfArgumentParser

    blocks = []
    for section, cls in _section_classes().items():
        parser = HfArgumentParser(cls, add_help=False, usage=argparse.SUPPRESS)
        parser.description = None
        for action in parser._actions:
            if not action.option_strings:
                continue
            negated = any(o.startswith("--no_") or o.startswith("--no-") for o in action.option_strings)
            action.option_strings = [f"--{section}.{'no_' if negated else ''}{action.dest}"]
            own = FIELD_HELP.get((section, action.dest))
            if own and not negated:
                action.help = own
        text = parser.format_help().replace("options:\n", "", 1).strip("\n")
        blocks.append(f"=== section '{section}' (in the config file under '{section}:', or --{section}.FIELD VALUE) ===\n{text}")
    return "\n\n".join(blocks)


def _train(ns: argparse.Namespace, rest: list[str]) -> int:
    if ns.help_fields:
        print(help_fields_text())
        return 0
    from .checkpoints import claim_output_dir
    from .pipeline import run_training

    if not ns.config and not rest:
        raise ValueError("hf-transfer train needs a config file (e.g. recipes/examples/image_folder.yaml) or "
                         "--section.field overrides; see `hf-transfer train --help`.")
    model_args, source_args, target_args, training_args, pretraining_args = parse_train_arguments(ns.config, rest)
    ns.output_dir = training_args.output_dir  # for the messages of a run that stops
    removed = claim_output_dir(
        training_args.output_dir, overwrite=training_args.overwrite_output_dir,
        resume=training_args.resume_from_checkpoint,
    )
    if removed:
        logging.getLogger(__name__).warning(
            "overwrite_output_dir: removed the old run's %s from %s.", ", ".join(removed), training_args.output_dir
        )
    metrics = run_training(model_args, source_args, target_args, training_args, pretraining_args)
    print(json.dumps(metrics, indent=2, sort_keys=True))
    print(f"Adapted model saved to {training_args.output_dir}")
    return 0


def _evaluate(ns: argparse.Namespace, rest: list[str]) -> int:
    from .evaluation import evaluate_saved_model

    results = evaluate_saved_model(
        ns.model, ns.dataset, split=ns.split, input_column=ns.input_column, label_column=ns.label_column,
        batch_size=ns.batch_size, center_crop=ns.center_crop, config=ns.config, revision=ns.revision,
        data_dir=ns.data_dir, filter_column=ns.filter_column, filter_values=ns.filter_values, label_names=ns.label_names,
    )
    print(json.dumps(results, indent=2, sort_keys=True))
    return 0


def _demo(ns: argparse.Namespace, rest: list[str]) -> int:
    from .demo import run_demo

    run_demo(output_dir=ns.output_dir, seed=ns.seed)
    return 0


def _push(ns: argparse.Namespace, rest: list[str]) -> int:
    return push_command(ns)


# ----------------------------------------------------------------------------- push
def add_push_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Arguments of ``hf-transfer push`` (see :func:`hf_transfer.hub.push_to_hub`)."""
    from .cards import DOMAINS

    parser.add_argument("output_dir", help="Directory written by the trainer's save_model")
    parser.add_argument("repo_id", help="Target repo, e.g. my-user/vit-dann-office31")
    parser.add_argument("--base-model-repo-id", default=None, help="Hub id of the base model if trained from a local path")
    parser.add_argument(
        "--push-base-model",
        action="store_true",
        help="Also push the local base checkpoint the adapter was trained from (e.g. the demo's source-pretrained "
        "backbone) to --base-model-repo-id first, in its own commit",
    )
    parser.add_argument("--private", action="store_true")
    parser.add_argument("--revision", default=None, help="Branch to push to (created if missing)")
    parser.add_argument("--create-pr", action="store_true", help="Open a pull request instead of committing")
    parser.add_argument("--commit-message", default=None)
    parser.add_argument("--no-discriminator", action="store_true", help="Do not upload the domain discriminator")
    parser.add_argument("--domain", choices=DOMAINS, default="generic", help="Model card domain section")
    parser.add_argument("--license", default=None)
    parser.add_argument("--overwrite", action="store_true", help="Allow pushing into an existing non-hf_transfer repo")
    return parser


def main_push(
    output_dir: str,
    repo_id: str,
    *,
    base_model_repo_id: str | None = None,
    private: bool = False,
    revision: str | None = None,
    create_pr: bool = False,
    commit_message: str | None = None,
    include_discriminator: bool = True,
    domain: str = "generic",
    license: str | None = None,
    overwrite: bool = False,
    push_base: bool = False,
    debug: bool = False,
) -> int:
    """argparse-free entry point: push, print the commit/PR URL, return an exit code (no token output)."""
    from .hub.push import HubPushError, LocalBaseModelError, push_local_base, push_to_hub

    try:
        if push_base:
            base_info = push_local_base(output_dir, base_model_repo_id, private=private)
            print(base_info.commit_url)
        info = push_to_hub(
            output_dir, repo_id, base_model_repo_id=base_model_repo_id, private=private, revision=revision,
            create_pr=create_pr, commit_message=commit_message, include_discriminator=include_discriminator,
            domain=domain, license=license, overwrite=overwrite,
        )
    except LocalBaseModelError:
        _report("push", _local_base_message(output_dir, repo_id), debug)
        return EXIT_FAILED
    except HubPushError as exc:
        _report("push", str(exc), debug)
        return EXIT_FAILED
    print(info.pr_url or info.commit_url)
    return 0


def _local_base_message(output_dir: str, repo_id: str) -> str:
    return (
        f"The adapter in {output_dir} was trained from a local base model (a checkpoint folder on this machine), "
        "which nobody else can load. Pass --base-model-repo-id <namespace>/<name>, the base model's Hub id, and add "
        "--push-base-model to upload the local base there first: "
        f"hf-transfer push {output_dir} {repo_id} --base-model-repo-id <namespace>/<base-name> --push-base-model"
    )


def push_command(args: argparse.Namespace) -> int:
    """Handler for ``hf-transfer push``; tolerates parsers that define only some optional flags."""
    return main_push(
        args.output_dir,
        args.repo_id,
        base_model_repo_id=getattr(args, "base_model_repo_id", None),
        private=getattr(args, "private", False),
        revision=getattr(args, "revision", None),
        create_pr=getattr(args, "create_pr", False),
        commit_message=getattr(args, "commit_message", None),
        include_discriminator=not getattr(args, "no_discriminator", False),
        domain=getattr(args, "domain", None) or "generic",
        license=getattr(args, "license", None),
        overwrite=getattr(args, "overwrite", False),
        push_base=getattr(args, "push_base_model", False),
        debug=getattr(args, "debug", False),
    )


def _common_options(parser: argparse.ArgumentParser, *, top: bool) -> None:
    default = False if top else argparse.SUPPRESS  # a sub-command's flag must not reset the top-level one
    parser.add_argument(
        "--debug", action="store_true", default=default,
        help="On an error, show the traceback as well as the message (also: HF_TRANSFER_DEBUG=1).",
    )
    parser.add_argument(
        "--verbose", action="store_true", default=default,
        help="Print the Trainer's raw log dicts and every library's INFO messages.",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hf-transfer",
        description="Cross-domain transfer learning: LoRA + domain-adversarial training for Hugging Face backbones.",
        epilog="An error prints one paragraph and exits non-zero (2: bad input, 1: the run failed, 130: "
        "interrupted); add --debug (or set HF_TRANSFER_DEBUG=1) for the traceback.",
    )
    _common_options(parser, top=True)
    common = argparse.ArgumentParser(add_help=False)
    _common_options(common, top=False)
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser(
        "train",
        parents=[common],
        help="Adapt a backbone from a YAML/JSON config.",
        description="Train LoRA + DANN from CONFIG (sections model/source/target/training). Override any field "
        "with --section.field VALUE, e.g. --training.max_steps 100 --source.dataset path/to/folder. "
        "Use --help-fields to list every field.",
    )
    train.add_argument("config", nargs="?", help="YAML or JSON config file.")
    train.add_argument("--help-fields", action="store_true", help="List every field of every section and exit.")
    train.set_defaults(func=_train)

    evaluate = sub.add_parser(
        "evaluate", parents=[common], help="Accuracy and macro-F1 of a saved adapted model on a dataset."
    )
    evaluate.add_argument("model", help="Folder written by `hf-transfer train` (or save_model).")
    evaluate.add_argument("dataset", help="Hub id, class-folder path or data file(s).")
    evaluate.add_argument("--config", default=None, help="Hub dataset config name.")
    evaluate.add_argument("--revision", default=None, help="Hub dataset revision, e.g. refs/convert/parquet.")
    evaluate.add_argument("--data-dir", default=None, help="data_dir of a Hub dataset (or a sub-folder of a local one).")
    evaluate.add_argument("--split", default="train")
    evaluate.add_argument(
        "--filter-column", default=None,
        help="Keep only rows whose value in this column is one of --filter-values (as the domain's training did).",
    )
    evaluate.add_argument("--filter-values", nargs="+", default=None)
    evaluate.add_argument(
        "--label-names", nargs="+", default=None, help="Names of integer class ids 0..K-1, as the domain's training gave them.",
    )
    evaluate.add_argument("--input-column", default=None)
    evaluate.add_argument("--label-column", default="label")
    evaluate.add_argument("--batch-size", type=int, default=32)
    evaluate.add_argument(
        "--center-crop", type=float, default=None,
        help="Images: keep this central fraction of each image, as the domain's training did (see domain_adaptation.json).",
    )
    evaluate.set_defaults(func=_evaluate)

    demo = sub.add_parser(
        "demo", parents=[common],
        help="Offline demo: digits → digits in random ink/paper colours, source-only vs DANN (32-36 s on an idle "
        "2-core CPU, the README's reference machine).",
    )
    demo.add_argument("--output-dir", default="outputs/demo")
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(func=_demo)

    push = sub.add_parser(
        "push", parents=[common], help="Push an adapted model folder to the Hub in one commit, with its model card."
    )
    add_push_arguments(push)
    push.set_defaults(func=_push)
    return parser


class _Formatter(logging.Formatter):
    """INFO lines as plain sentences; warnings and errors with their level and logger."""

    def format(self, record: logging.LogRecord) -> str:
        self._style._fmt = "%(message)s" if record.levelno == logging.INFO else "%(levelname)s %(name)s: %(message)s"
        return super().format(record)


def _configure_logging(verbose: bool) -> None:
    """hf_transfer's own INFO lines (stages, progress) on stderr; other libraries' only with --verbose."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and handler.stream in (sys.stderr, sys.stdout):
            handler.setFormatter(_Formatter())
    logging.getLogger("hf_transfer").setLevel(logging.INFO)


def _explain(exc: BaseException, ns: argparse.Namespace) -> Failure | None:
    """An expected failure as one paragraph and an exit code; ``None`` for anything else (a bug: traceback)."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    output_dir = getattr(ns, "output_dir", None)
    if "NonFiniteLossError" in names:
        from .checkpoints import describe_checkpoints

        saved = f" Saved work: {describe_checkpoints(output_dir)}." if output_dir else ""
        return Failure(f"{exc}{saved}", EXIT_FAILED)
    if names & {"HubPushError", "HubLoadError", "HubUnreachableError"}:
        return Failure(str(exc), EXIT_FAILED)
    cause = network_cause(exc)
    if cause is not None:
        return Failure(unreachable_message(f"{ns.command} needs the Hub", cause), EXIT_FAILED)
    if isinstance(exc, (ValueError, FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError)):
        return Failure(str(exc), EXIT_USAGE)
    if isinstance(exc, OSError) and "huggingface" in str(exc).lower():  # transformers: model/files not found
        return Failure(str(exc), EXIT_USAGE)
    return None


def _interrupted(ns: argparse.Namespace) -> str:
    output_dir = getattr(ns, "output_dir", None)
    if ns.command == "train" and output_dir:
        from .checkpoints import describe_checkpoints, newest_checkpoint

        text = f"interrupted. Saved work is intact: {describe_checkpoints(output_dir)}"
        if newest_checkpoint(output_dir) is not None:
            text += "; resume with the same command and --training.resume_from_checkpoint last"
        return text + "."
    if ns.command == "push":
        return "interrupted. A push is one commit: the remote repository is unchanged unless that commit was made."
    return "interrupted. Files saved before the interrupt are intact (every save is written whole, then moved in place)."


def _close_progress_bars() -> None:
    """End the bars a stopped run left open, so the message starts on a line of its own."""
    from tqdm import tqdm

    for bar in list(getattr(tqdm, "_instances", ())):
        bar.close()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    ns, rest = parser.parse_known_args(argv)
    if rest and ns.command != "train":
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    debug = debug_requested(ns.debug)
    _configure_logging(ns.verbose)
    from tqdm.contrib.logging import logging_redirect_tqdm

    from . import progress

    verbose, progress.VERBOSE = progress.VERBOSE, ns.verbose
    try:
        with logging_redirect_tqdm():  # log lines above the progress bars, not through them
            return ns.func(ns, rest)
    except KeyboardInterrupt:
        _close_progress_bars()
        if debug:
            traceback.print_exc()
        print(f"hf-transfer {ns.command}: {_interrupted(ns)}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        failure = _explain(exc, ns)
        if failure is None:
            raise  # not an expected failure: a bug, with its traceback
        _close_progress_bars()
        _report(ns.command, failure.message, debug)
        return failure.exit_code
    finally:
        progress.VERBOSE = verbose  # for this command only (main can run several times in one process)


def _report(command: str, message: str, debug: bool = False) -> None:
    """An expected failure on stderr: the traceback first with --debug, then the one paragraph."""
    debug = debug_requested(debug)
    if debug and sys.exc_info()[0] is not None:
        traceback.print_exc()
    print(f"hf-transfer {command}: error: {message}", file=sys.stderr)
    if not debug:
        print("(run again with --debug, or HF_TRANSFER_DEBUG=1, to see the traceback)", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
