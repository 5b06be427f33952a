"""See the domain shift: before training (``hf-transfer diagnose``) and after it (numbers and pictures).

* :func:`diagnose` — the proxy A-distance, the MMD (with a permutation test) and the model's predicted
  class mix on the target against the source's labels, and a verdict in words (:class:`ShiftDiagnosis`);
* :func:`shift_report` — after training: the A-distance and MMD before and after adaptation, recorded in
  ``domain_adaptation.json``, and PNG pictures (t-SNE, training curves, confusion matrices) for the card.

Names are imported on first use, so ``hf-transfer --help`` (which registers ``diagnose``) loads no torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "diagnose": ".diagnosis",
    "add_diagnose_arguments": ".diagnosis",
    "ShiftDiagnosis": ".shift",
    "measure_shift": ".shift",
    "mmd_permutation_test": ".shift",
    "feature_mmd": ".shift",
    "ShiftReport": ".report",
    "shift_report": ".report",
    "DomainOutputs": ".features",
    "collect_outputs": ".features",
    "matplotlib_available": ".pictures",
}


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name], __name__), name)


__all__ = sorted(_EXPORTS)
