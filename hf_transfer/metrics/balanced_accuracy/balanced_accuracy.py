"""Balanced accuracy (mean per-class recall), as an `evaluate` module shipped inside hf_transfer.

On a skewed target domain (e.g. Tecom blood cells, 176 neutrophils vs 1 basophil) plain accuracy
rewards predicting the majority class; balanced accuracy weighs every class present in the
references equally (Brodersen et al., ICPR 2010; scikit-learn's ``balanced_accuracy_score``).
"""

import datasets
import evaluate
import numpy as np

_DESCRIPTION = "Balanced accuracy: the mean, over the classes present in the references, of per-class recall."
_KWARGS_DESCRIPTION = """
Args:
    predictions (list of int): predicted labels.
    references (list of int): ground-truth labels.
Returns:
    balanced_accuracy (float)
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class BalancedAccuracy(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("int32"), "references": datasets.Value("int32")}
            ),
        )

    def _compute(self, predictions, references):
        predictions, references = np.asarray(predictions), np.asarray(references)
        recalls = [float((predictions[references == c] == c).mean()) for c in np.unique(references)]
        return {"balanced_accuracy": float(np.mean(recalls)) if recalls else 0.0}
