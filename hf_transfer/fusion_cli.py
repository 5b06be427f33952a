"""``hf-transfer fuse``: fuse saved adapters into one, and evaluate fusion and routing on every domain.

Only argparse here (``hf-transfer --help`` stays light); :mod:`hf_transfer.fusion` does the work.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

COMBINATIONS = ("cat", "linear", "ties", "dare_ties", "dare_linear", "svd")  # hf_transfer.fusion.COMBINATION_TYPES


def add_fuse_arguments(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``hf-transfer fuse`` on the CLI's sub-parsers."""
    parser = subparsers.add_parser(
        "fuse",
        help="Fuse adapters trained for different targets on one base (peft add_weighted_adapter) and evaluate the "
        "fused adapter, per-input routing and each domain's own adapter on every domain.",
        description="Fuse ADAPTER folders (same base model, same labels) into --output-dir with peft's "
        "add_weighted_adapter; the heads are averaged with the same weights. With --domain NAME=DATASET (NAME: the "
        "adapter trained for that domain, see --names), evaluate the fused adapter, the domain's own adapter and, "
        "with --route, each input routed to its predicted domain's adapter, and record the results in the card.",
    )
    parser.add_argument("adapters", nargs="+", help="Folders written by `hf-transfer train` (two or more).")
    parser.add_argument("--output-dir", required=True, help="Where the fused adapter is saved.")
    parser.add_argument("--names", nargs="+", default=None, help="One name per adapter: its domain (default: folder names).")
    parser.add_argument("--weights", nargs="+", type=float, default=None, help="One weight per adapter (default: equal, sum 1).")
    parser.add_argument("--combination", choices=COMBINATIONS, default="cat",
                        help="cat: the exact weighted sum of the LoRA updates (rank = sum of ranks); linear: peft's "
                        "factor mix at the same rank (adds cross terms); ties / dare_ties / dare_linear: pruned, need "
                        "--density; svd: the exact sum re-factorised at --svd-rank.")
    parser.add_argument("--density", type=float, default=None, help="Fraction of factor entries kept (ties, dare_*).")
    parser.add_argument("--svd-rank", type=int, default=None, help="Rank of the svd combination (default: the largest).")
    parser.add_argument("--domain", action="append", default=[], metavar="NAME=DATASET",
                        help="A labelled evaluation domain (repeat): Hub id, class-folder path or data file(s).")
    parser.add_argument("--split", default="train", help="Evaluation split of every --domain (a plain class folder is all 'train').")
    parser.add_argument("--input-column", default=None)
    parser.add_argument("--label-column", default="label")
    parser.add_argument("--center-crop", type=float, default=None, help="Images: the central fraction kept, as in training.")
    parser.add_argument("--route", action="store_true", help="Also evaluate routing each input to its domain's adapter.")
    parser.add_argument("--router", choices=("domain_classifier", "discriminators"), default="domain_classifier",
                        help="domain_classifier: a K-way domain classifier fitted on the base model's features of "
                        "unlabelled --router-split examples of each adapter's domain; discriminators: each adapter's "
                        "own DANN discriminator (no fitting, but trained to be fooled).")
    parser.add_argument("--router-split", default="train", help="Split whose inputs (never labels) fit the router.")
    parser.add_argument("--max-router-examples", type=int, default=256, help="Per domain, for fitting the router.")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.set_defaults(func=fuse_command)
    return parser


def parse_domains(values: list[str]) -> dict[str, str]:
    """``["usps=data/usps", ...]`` → ``{"usps": "data/usps"}``, with a clear error for anything else."""
    domains: dict[str, str] = {}
    for value in values:
        name, sep, dataset = value.partition("=")
        if not sep or not name or not dataset:
            raise ValueError(f"--domain takes NAME=DATASET (e.g. --domain usps=data/usps), got {value!r}.")
        if name in domains:
            raise ValueError(f"--domain {name} is given twice.")
        domains[name] = dataset
    return domains


def fuse_command(ns: argparse.Namespace, rest: list[str]) -> int:
    """Handler of ``hf-transfer fuse``: the fused folder, then (with --domain) the evaluation as JSON."""
    from .fusion import evaluate_fusion, fuse_adapters

    domains = parse_domains(ns.domain)  # before any model is loaded
    ns.output_dir = fuse_adapters(
        ns.adapters, ns.output_dir, weights=ns.weights, names=ns.names, combination_type=ns.combination,
        density=ns.density, svd_rank=ns.svd_rank,
    )
    result: dict[str, Any] = {"output_dir": str(ns.output_dir)}
    if domains:
        common = {"input_column": ns.input_column, "label_column": ns.label_column, "center_crop": ns.center_crop}
        result["evaluation"] = evaluate_fusion(
            ns.adapters, {n: {"dataset": d, "split": ns.split, **common} for n, d in domains.items()}, names=ns.names,
            fused_dir=ns.output_dir, route=ns.route, router_scores=ns.router,
            router_domains={n: {"dataset": d, "split": ns.router_split, **common} for n, d in domains.items()},
            max_router_examples=ns.max_router_examples, batch_size=ns.batch_size,
        )
    print(json.dumps(result, indent=2, sort_keys=True))
    print(f"Fused adapter saved to {ns.output_dir}")
    return 0
