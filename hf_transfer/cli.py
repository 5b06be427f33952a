"""``hf-transfer``: train | evaluate | demo | push | sweep | diagnose.

``hf-transfer train CONFIG.yaml --training.max_steps 200 --source.dataset data/a`` reads a YAML
(or JSON) file with the sections ``model``, ``source``, ``target``, ``training`` and (optional)
``pretraining``; each section is parsed by ``HfArgumentParser`` into its dataclass, and
``--section.field value`` overrides any field. ``hf-transfer train --help-fields`` lists every field.
String values may use ``${VAR}`` or ``${VAR:-default}`` (environment variables), so a recipe can
point at data whose location differs per machine.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

# The config parsing lives in .config (the sweep reads configs too); re-exported here.
from .config import SECTIONS, expand_env, load_config, parse_train_arguments  # noqa: F401
from .config import section_classes as _section_classes


def _train(ns: argparse.Namespace, rest: list[str]) -> int:
    if ns.help_fields:
        from transformers import HfArgumentParser

        for section, cls in _section_classes().items():
            print(f"\n=== section '{section}' (override with --{section}.FIELD VALUE) ===")
            HfArgumentParser(cls).print_help()
        return 0
    from .pipeline import run_training

    model_args, source_args, target_args, training_args, pretraining_args = parse_train_arguments(ns.config, rest)
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
) -> int:
    """argparse-free entry point: push, print the commit/PR URL, return an exit code (no token output)."""
    from .hub.push import HubPushError, push_local_base, push_to_hub

    try:
        if push_base:
            base_info = push_local_base(output_dir, base_model_repo_id, private=private)
            print(base_info.commit_url)
        info = push_to_hub(
            output_dir, repo_id, base_model_repo_id=base_model_repo_id, private=private, revision=revision,
            create_pr=create_pr, commit_message=commit_message, include_discriminator=include_discriminator,
            domain=domain, license=license, overwrite=overwrite,
        )
    except HubPushError as exc:
        print(f"hf-transfer push: error: {exc}", file=sys.stderr)
        return 1
    print(info.pr_url or info.commit_url)
    return 0


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
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hf-transfer",
        description="Cross-domain transfer learning: LoRA + domain-adversarial training for Hugging Face backbones.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser(
        "train",
        help="Adapt a backbone from a YAML/JSON config.",
        description="Train LoRA + DANN from CONFIG (sections model/source/target/training). Override any field "
        "with --section.field VALUE, e.g. --training.max_steps 100 --source.dataset path/to/folder. "
        "Use --help-fields to list every field.",
    )
    train.add_argument("config", nargs="?", help="YAML or JSON config file.")
    train.add_argument("--help-fields", action="store_true", help="List every field of every section and exit.")
    train.set_defaults(func=_train)

    evaluate = sub.add_parser("evaluate", help="Accuracy and macro-F1 of a saved adapted model on a dataset.")
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
        "demo", help="Offline demo: digits → digits in random ink/paper colours, source-only vs DANN (about a minute on CPU)."
    )
    demo.add_argument("--output-dir", default="outputs/demo")
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(func=_demo)

    push = sub.add_parser("push", help="Push an adapted model folder to the Hub in one commit, with its model card.")
    add_push_arguments(push)
    push.set_defaults(func=_push)

    from .diagnostics.diagnosis import add_diagnose_arguments
    from .sweep import add_sweep_arguments

    add_sweep_arguments(sub)
    add_diagnose_arguments(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    parser = build_parser()
    ns, rest = parser.parse_known_args(argv)
    if rest and ns.command not in ("train", "sweep"):  # both take --section.field VALUE overrides
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    try:
        return ns.func(ns, rest)
    except (ValueError, FileNotFoundError) as exc:
        print(f"hf-transfer {ns.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
