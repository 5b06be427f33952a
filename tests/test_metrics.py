import numpy as np
import pytest
from transformers import EvalPrediction

from hf_transfer.metrics import SHIPPED_METRICS, ClassificationMetrics, load_metric


def test_shipped_metrics_load_offline_by_path():
    expected = {"accuracy": 0.75, "f1": pytest.approx(0.7333333), "balanced_accuracy": 0.75}
    for name in SHIPPED_METRICS:
        computed = load_metric(name).compute(predictions=[0, 1, 1, 1], references=[0, 1, 0, 1],
                                             **({"average": "macro"} if name == "f1" else {}))
        assert computed[name] == expected[name]
    with pytest.raises(ValueError, match="ships the metrics"):
        load_metric("bleu")


def test_balanced_accuracy_weighs_classes_equally():
    # 8 of class 0 all right, 2 of class 1 both wrong: accuracy 0.8, balanced accuracy 0.5
    refs = [0] * 8 + [1] * 2
    preds = [0] * 10
    metric = load_metric("balanced_accuracy")
    assert metric.compute(predictions=preds, references=refs)["balanced_accuracy"] == pytest.approx(0.5)
    assert metric.compute(predictions=refs, references=refs)["balanced_accuracy"] == pytest.approx(1.0)
    # a class never predicted but absent from the references does not count
    assert metric.compute(predictions=[0, 2], references=[0, 0])["balanced_accuracy"] == pytest.approx(0.5)


def test_classification_metrics_skip_unlabelled_rows():
    logits = np.array([[2.0, 0.0], [2.0, 0.0], [0.0, 2.0], [0.0, 2.0], [2.0, 0.0]])
    labels = np.array([0, 0, 0, 1, -100])
    out = ClassificationMetrics()(EvalPrediction(predictions=logits, label_ids=labels))
    assert out["accuracy"] == pytest.approx(0.75)
    assert out["balanced_accuracy"] == pytest.approx((2 / 3 + 1) / 2)
    assert 0 < out["f1"] < 1
    assert ClassificationMetrics()(EvalPrediction(predictions=logits, label_ids=np.full(5, -100))) == {}
