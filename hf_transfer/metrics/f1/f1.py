"""F1 score (binary, macro, micro or weighted), as an `evaluate` module shipped inside hf_transfer.

Loaded by path so it works offline. Macro-F1 is the default for domain adaptation: target
domains are often class-imbalanced and accuracy alone hides a collapsed minority class.
"""

import datasets
import evaluate
from sklearn.metrics import f1_score

_DESCRIPTION = "F1 = 2 * precision * recall / (precision + recall), averaged over classes."
_KWARGS_DESCRIPTION = """
Args:
    predictions (list of int): predicted labels.
    references (list of int): ground-truth labels.
    average (str): 'macro' (default), 'micro', 'weighted' or 'binary'.
    labels (list of int): the label set to average over (default: those present).
Returns:
    f1 (float)
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class F1(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("int32"), "references": datasets.Value("int32")}
            ),
        )

    def _compute(self, predictions, references, average="macro", labels=None, sample_weight=None):
        score = f1_score(references, predictions, average=average, labels=labels, sample_weight=sample_weight, zero_division=0)
        return {"f1": float(score)}
