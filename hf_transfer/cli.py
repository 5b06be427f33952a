"""``hf-transfer``: train | adapt | evaluate | demo | push | sweep | diagnose | fuse.

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
import json
import logging
import sys
import traceback
from .errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE, Failure, debug_requested, network_cause, unreachable_message


# The config parsing lives in .config (the sweep reads configs too); re-exported here.
from .config import SECTIONS, expand_env, load_config, parse_train_arguments  # noqa: F401
from .config import section_classes as _section_classes


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
    model_args, source_args, target_args, training_args, pretraining_args = parse_train_arguments(
        ns.config, rest, allow_missing_source=True
    )
    if source_args is None:  # a target section and no source section: adapt the model without source data
        return _source_free(ns, model_args, target_args, training_args, pretraining_args)
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


def _adapt(ns: argparse.Namespace, rest: list[str]) -> int:
    """``hf-transfer adapt MODEL --target DATA --method shot``: the flags are shorthands for config fields."""
    flags = [("--model.model_name_or_path", ns.model), ("--target.dataset", ns.target),
             ("--training.method", ns.method or (None if ns.config else "shot")),
             ("--training.output_dir", ns.output_dir or (None if ns.config else f"outputs/{ns.method or 'shot'}")),
             ("--training.hub_model_id", ns.push_to_hub), ("--training.push_to_hub", "true" if ns.push_to_hub else None)]
    overrides = [item for flag, value in flags if value is not None for item in (flag, value)]
    model_args, source_args, target_args, training_args, pretraining_args = parse_train_arguments(
        ns.config, overrides + rest, allow_missing_source=True
    )
    if source_args is not None:
        raise ValueError("hf-transfer adapt uses no source data: remove the config's 'source' section (or run "
                         "`hf-transfer train` for a method that trains on the source).")
    return _source_free(ns, model_args, target_args, training_args, pretraining_args)


def _source_free(ns: argparse.Namespace, model_args, target_args, training_args, pretraining_args) -> int:
    from .checkpoints import claim_output_dir
    from .source_free import run_source_free

    if pretraining_args.epochs > 0:
        raise ValueError("A source-free run has no source data to pretrain on: remove the 'pretraining' section.")
    ns.output_dir = training_args.output_dir
    claim_output_dir(training_args.output_dir, overwrite=training_args.overwrite_output_dir,
                     resume=training_args.resume_from_checkpoint)
    metrics = run_source_free(model_args, target_args, training_args)
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
        description="Train LoRA + DANN from CONFIG (sections model/source/target/training; 'sources:', a list of "
        "sources, in place of 'source' for multi-source adaptation). Override any field "
        "with --section.field VALUE, e.g. --training.max_steps 100 --source.dataset path/to/folder. "
        "Use --help-fields to list every field.",
    )
    train.add_argument("config", nargs="?", help="YAML or JSON config file.")
    train.add_argument("--help-fields", action="store_true", help="List every field of every section and exit.")
    train.set_defaults(func=_train)

    adapt = sub.add_parser(
        "adapt",
        parents=[common],
        help="Adapt a shared classifier to unlabelled target data without its source data (SHOT, TENT, SAR).",
        description="Source-free adaptation: MODEL (a Hub id or folder: a fine-tuned checkpoint, a peft adapter or an "
        "hf_transfer adapter) is adapted to the unlabelled target data; the result is a new LoRA adapter. Any "
        "config field can be set with --section.field VALUE (sections model/target/training), e.g. "
        "--training.max_steps 200 --target.eval_split test.",
    )
    adapt.add_argument("model", nargs="?", help="Hub id or local folder of the trained classifier (or set it in --config).")
    adapt.add_argument("--target", default=None, help="Target data: Hub dataset id, class-folder path or data file(s).")
    adapt.add_argument("--method", default=None, help="A source-free method: shot (default), tent or sar.")
    adapt.add_argument("--output-dir", default=None, help="Where the new adapter is saved (default outputs/<method>).")
    adapt.add_argument("--config", default=None, help="YAML/JSON config with model, target and training sections.")
    adapt.add_argument("--push-to-hub", default=None, metavar="REPO_ID", help="Push the adapter to this repo after.")
    adapt.set_defaults(func=_adapt)

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

    from .diagnostics.diagnosis import add_diagnose_arguments
    from .sweep import add_sweep_arguments

    add_sweep_arguments(sub)
    add_diagnose_arguments(sub)
    from .fusion_cli import add_fuse_arguments

    add_fuse_arguments(sub)
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
    if rest and ns.command not in ("train", "adapt", "sweep"):  # they take --section.field VALUE overrides
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
