"""The card's "Domain shift and pictures" and "How this adapter was chosen" sections, from the run info.

Read by :func:`hf_transfer.cards.build_model_card`: ``RunInfo.shift`` (A-distance before/after,
:func:`hf_transfer.diagnostics.shift_report`), ``RunInfo.pictures`` (PNG files next to the adapter,
linked by relative path, uploaded by the Hub push) and ``RunInfo.selection`` (how a sweep chose the
adapter, :func:`hf_transfer.sweep.run_sweep`). No ML stack is imported here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

#: What each picture shows, by its ``RunInfo.pictures`` key (unknown keys are captioned by their name).
PICTURE_CAPTIONS = {
    "embedding": "Source and target features before and after adaptation (2-D embedding), by domain and by class",
    "training_curves": "Training curves: classification loss, domain loss, discriminator accuracy and λ",
    "confusion_matrices": "Confusion matrix per domain after adaptation (rows: true class)",
}
_PICTURE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*\.png$")


def picture_files(info: Mapping[str, Any]) -> dict[str, str]:
    """``RunInfo.pictures`` restricted to plain PNG file names in the folder itself (no path can sneak in)."""
    pictures = info.get("pictures")
    if not isinstance(pictures, Mapping):
        return {}
    return {str(k): str(v) for k, v in pictures.items() if isinstance(v, str) and _PICTURE_NAME.match(v)}


def _picture_order(key: str) -> tuple[int, str]:
    order = list(PICTURE_CAPTIONS)
    return (order.index(key) if key in order else len(order), key)


def _number(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, (int, float)) and not isinstance(value, bool) else "—"


def shift_and_selection_view(info: Mapping[str, Any]) -> dict[str, Any]:
    """Template variables ``shift``, ``pictures`` and ``selection`` (each empty when the run has none)."""
    shift = info.get("shift") if isinstance(info.get("shift"), Mapping) else {}
    shift_view = {}
    if shift:
        shift_view = {
            "before": _number(shift.get("a_distance_before")),
            "after": _number(shift.get("a_distance_after")),
            "num_source": shift.get("num_source", "—"),
            "num_target": shift.get("num_target", "—"),
        }
    pictures = [
        {"caption": PICTURE_CAPTIONS.get(key, key.replace("_", " ")), "file": name}
        for key, name in sorted(picture_files(info).items(), key=lambda item: _picture_order(item[0]))
    ]
    selection = info.get("selection") if isinstance(info.get("selection"), Mapping) else {}
    selection_view = {}
    if selection:
        values = selection.get("values") or {}
        excluded = selection.get("excluded") or {}
        selection_view = {
            "summary": (
                f"This adapter is candidate `{selection.get('candidate')}` of a sweep over "
                f"{selection.get('num_candidates', '?')} candidates, chosen by **{selection.get('validator')}** "
                f"({selection.get('validator_description', '')}) without reading any target label."
            ),
            "settings": ", ".join(f"`{k}={v}`" for k, v in values.items()) or "—",
            "excluded": [f"`{name}`: {reason}" for name, reason in excluded.items()],
            "table": str(selection.get("table") or ""),
        }
    return {"shift": shift_view, "pictures": pictures, "selection": selection_view, "fusion": fusion_view(info)}


def _domain_text(domain: Any) -> str:
    if not isinstance(domain, Mapping):
        return "—"
    dataset = domain.get("dataset")
    description = domain.get("description")
    parts = [str(p) for p in (dataset, description) if p]
    return ": ".join(parts) if parts else "—"


def fusion_view(info: Mapping[str, Any]) -> dict[str, Any]:
    """Template variable ``fusion``: the adapters a fused adapter was made of, and its evaluation per domain."""
    fusion = info.get("fusion") if isinstance(info.get("fusion"), Mapping) else {}
    if not fusion:
        return {}
    sources = [
        {
            "name": str(s.get("name", "—")),
            "adapter": str(s.get("adapter", "—")),
            "weight": _number(s.get("weight")),
            "method": str(s.get("method", "—")),
            "source": _domain_text(s.get("source_domain")),
            "target": _domain_text(s.get("target_domain")),
        }
        for s in fusion.get("sources") or [] if isinstance(s, Mapping)
    ]
    combination = str(fusion.get("combination_type", "—"))
    if fusion.get("density") is not None:
        combination += f" (density {fusion['density']})"
    evaluation = fusion.get("evaluation") if isinstance(fusion.get("evaluation"), Mapping) else {}
    columns = [c for c in ("fused", "routed", "own") if any(c in (v or {}) for v in evaluation.values())]
    rows = []
    for domain, values in evaluation.items():
        values = values if isinstance(values, Mapping) else {}
        rows.append({"domain": str(domain), "cells": [_number((values.get(c) or {}).get("accuracy")) for c in columns]})
    return {"combination": combination, "head": str(fusion.get("head", "—")), "sources": sources,
            "columns": columns, "rows": rows}
