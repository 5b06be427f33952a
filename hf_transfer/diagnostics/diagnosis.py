"""``hf-transfer diagnose``: measure the shift between two domains *before* training, and say if it matters.

::

    hf-transfer diagnose --model google/vit-base-patch16-224-in21k --source data/photos --target data/sketches

The model is a backbone checkpoint (a Hub id or a folder; ideally a source-only model, whose head
knows the source's classes) or a folder written by ``hf-transfer train``. Its pooled features on up
to ``--max-examples`` rows of each domain give the proxy A-distance and the MMD (with a permutation
test); when its head was trained for the source's classes, its predicted class mix on the target is
compared with the source's label mix. Target labels are never read (the target is loaded unlabelled).
See :mod:`hf_transfer.diagnostics.shift` for the measures and the verdict.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from .shift import ShiftDiagnosis

# Module level stays free of torch: the CLI imports add_diagnose_arguments to build its parser.


def _load_model(model: str, names: list[str], modality: str) -> tuple[Any, Any, list[str] | None]:
    """``(model, processor, class order of its trained head or None)`` for a backbone or an adapted folder."""
    from transformers import AutoConfig, AutoProcessor

    from ..artifacts import RUN_INFO_NAME
    from ..backbones import load_backbone
    from ..modeling import DomainAdaptationModel

    if os.path.isfile(os.path.join(model, RUN_INFO_NAME)):
        adapted = DomainAdaptationModel.from_pretrained(model)
        processor = AutoProcessor.from_pretrained(model)
        head = [adapted.config.id2label[i] for i in sorted(adapted.config.id2label)]
        return adapted, processor, head if set(head) == set(names) else None
    own = AutoConfig.from_pretrained(model)
    own_names = [str(own.id2label[i]) for i in sorted(own.id2label)] if getattr(own, "id2label", None) else []
    head = own_names if set(own_names) == set(names) and len(own_names) == len(names) else None
    backbone = load_backbone(model, label_names=head or names, modality=modality)
    return backbone.model, backbone.processor, head


def _as_domain_args(domain: Any, split: str, labelled: bool) -> Any:
    from ..data import DomainDataArguments

    if isinstance(domain, DomainDataArguments):
        return domain
    return DomainDataArguments(dataset=str(domain), split=split, label_column="label" if labelled else None)


def diagnose(
    model: str | os.PathLike,
    source: Any,
    target: Any,
    *,
    source_split: str = "train",
    target_split: str = "train",
    max_examples: int = 500,
    batch_size: int = 32,
    permutations: int = 200,
    seed: int = 0,
) -> ShiftDiagnosis:
    """Measure the shift between ``source`` and ``target`` in ``model``'s features (see the module docstring).

    ``source``/``target`` are what ``hf-transfer train`` reads (a Hub id, a class-folder path, data files) or
    :class:`~hf_transfer.data.DomainDataArguments`; the target is read without its labels.
    """
    from ..data import DomainBatchCollator, build_transform, check_modality, infer_modality, load_domain
    from ..data.labels import label_names
    from .features import collect_outputs
    from .shift import measure_shift

    source_data = load_domain(_as_domain_args(source, source_split, labelled=True), seed=seed)
    target_args = _as_domain_args(target, target_split, labelled=False)
    if target_args.label_column is not None:  # never read: the diagnosis is label-free on the target
        from dataclasses import replace

        target_args = replace(target_args, label_column=None)
    target_data = load_domain(target_args, seed=seed)
    modality = infer_modality(source_data)
    if infer_modality(target_data) != modality:
        raise ValueError(f"The source is {modality} but the target is {infer_modality(target_data)}.")
    names = label_names(source_data)
    if not names:
        raise ValueError("The source domain must be labelled (a class-folder tree or a 'label' column).")
    network, processor, head = _load_model(os.fspath(model), names, modality)
    if head is not None and head != names:  # the model's class order differs from the data's: relabel the data
        order = {name: i for i, name in enumerate(head)}
        source_data = source_data.map(lambda row: {"label": order[names[row["label"]]]})
    check_modality(processor, modality, backbone=os.fspath(model))
    transform = build_transform(processor, modality)
    collator = DomainBatchCollator.for_processor(processor)
    common = dict(batch_size=batch_size, max_examples=max_examples, seed=seed)
    source_out = collect_outputs(network, source_data.with_transform(transform), collator, **common)
    target_out = collect_outputs(network, target_data.with_transform(transform), collator, **common)
    return measure_shift(
        source_out.features, target_out.features, source_labels=source_out.labels,
        source_logits=source_out.logits if head else None, target_logits=target_out.logits if head else None,
        class_names=head or names, permutations=permutations, seed=seed,
    )


# ----------------------------------------------------------------------------- CLI
def add_diagnose_arguments(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``hf-transfer diagnose`` on the CLI's sub-parsers."""
    parser = subparsers.add_parser(
        "diagnose",
        help="Measure the shift between two domains before training (A-distance, MMD, class mix) and say if "
        "adaptation is likely to matter.",
        description="Measure the domain shift in a model's features before training: proxy A-distance, MMD with a "
        "permutation test, and the model's predicted class mix on the target against the source's labels. "
        "Target labels are never read.",
    )
    parser.add_argument("--model", required=True, help="Backbone (Hub id or folder; ideally source-only) or an "
                        "`hf-transfer train` output folder.")
    parser.add_argument("--source", required=True, help="Labelled source: Hub id, class-folder path or data file(s).")
    parser.add_argument("--target", required=True, help="Target (read unlabelled): Hub id, folder or data file(s).")
    parser.add_argument("--source-split", default="train")
    parser.add_argument("--target-split", default="train")
    parser.add_argument("--max-examples", type=int, default=500, help="Rows per domain (a seeded sample).")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--permutations", type=int, default=200, help="Permutations of the MMD test.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="Also write the measures and the verdict to this JSON file.")
    parser.set_defaults(func=diagnose_command)
    return parser


def diagnose_command(ns: argparse.Namespace, rest: list[str] | None = None) -> int:
    diagnosis = diagnose(
        ns.model, ns.source, ns.target, source_split=ns.source_split, target_split=ns.target_split,
        max_examples=ns.max_examples, batch_size=ns.batch_size, permutations=ns.permutations, seed=ns.seed,
    )
    print(diagnosis.format())
    if ns.json:
        from ..utils.io import write_json_atomic

        write_json_atomic(Path(ns.json), diagnosis.to_dict())
    sys.stdout.flush()
    return 0


__all__ = ["add_diagnose_arguments", "diagnose", "diagnose_command"]
