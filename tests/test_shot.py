"""SHOT (Liang et al. 2020): the information-maximisation + pseudo-label loss and the clustering pseudo-labels."""

import math

import pytest
import torch

from hf_transfer.alignment.registry import AlignmentBatch, get_method
from hf_transfer.alignment.shot import ShotLoss, ShotSettings, ShotTerm, shot_pseudo_labels


def _softmax(row):
    exps = [math.exp(v) for v in row]
    return [e / sum(exps) for e in exps]


def test_shot_loss_matches_a_hand_computation():
    logits = [[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.5, 0.5, 3.0]]
    labels = [0, 2, -100]  # the third row has no pseudo-label yet
    p = [_softmax(r) for r in logits]
    ent = sum(-sum(q * math.log(q) for q in row) for row in p) / 3
    mean = [sum(row[k] for row in p) / 3 for k in range(3)]
    div = sum(m * math.log(m) for m in mean)
    pl = (-math.log(p[0][0]) - math.log(p[1][2])) / 2
    total, got_ent, got_div, got_pl = ShotLoss(0.3)(torch.tensor(logits), torch.tensor(labels))
    assert got_ent.item() == pytest.approx(ent, abs=1e-6)
    assert got_div.item() == pytest.approx(div, abs=1e-6)
    assert got_pl.item() == pytest.approx(pl, abs=1e-6)
    assert total.item() == pytest.approx(ent + div + 0.3 * pl, abs=1e-6)


def test_diversity_is_lowest_when_every_class_is_used():
    one_class = torch.tensor([[9.0, 0, 0], [9.0, 0, 0], [9.0, 0, 0]])
    every_class = torch.eye(3) * 9
    assert ShotLoss(0.0)(every_class)[2].item() == pytest.approx(-math.log(3), abs=1e-3)  # Σ p̄ log p̄ = -log K
    assert ShotLoss(0.0)(one_class)[2].item() > -0.01  # one class takes all the mass: p̄ log p̄ ≈ 0
    with pytest.raises(ValueError, match="must be >= 0"):
        ShotLoss(-1.0)


def test_pseudo_labels_follow_the_feature_clusters_not_the_wrong_predictions():
    # two tight clusters in feature space; the classifier is wrong on one row of each
    features = torch.tensor([[1.0, 0.0], [0.9, 0.1], [1.0, 0.05], [0.0, 1.0], [0.1, 0.9], [0.05, 1.0]])
    logits = torch.tensor([[2.0, 0.0], [2.0, 0.0], [0.0, 0.3], [0.0, 2.0], [0.0, 2.0], [0.3, 0.0]])
    assert logits.argmax(1).tolist() == [0, 0, 1, 1, 1, 0]
    assert shot_pseudo_labels(features, logits).tolist() == [0, 0, 0, 1, 1, 1]


def test_pseudo_labels_by_hand_one_round():
    """One round by hand: features with a 1 appended, normalised; prediction-weighted centroids; cosine distance."""
    features = torch.tensor([[1.0, 2.0], [2.0, 0.5], [-1.0, 1.0]])
    logits = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.5, 0.0]])
    f = torch.nn.functional.normalize(torch.cat([features, torch.ones(3, 1)], 1), dim=1)
    p = logits.softmax(1)
    expected = []
    centroids = [sum(p[i, k] * f[i] for i in range(3)) / p[:, k].sum() for k in range(2)]
    for i in range(3):
        cos = [float(f[i] @ c / c.norm()) for c in centroids]
        expected.append(max(range(2), key=lambda k: cos[k]))
    assert shot_pseudo_labels(features, logits, rounds=1).tolist() == expected


def test_a_class_never_predicted_gets_no_centroid():
    features = torch.randn(5, 4)
    logits = torch.tensor([[3.0, 0.0, 0.0]] * 3 + [[0.0, 3.0, 0.0]] * 2)  # class 2 never predicted
    assert 2 not in shot_pseudo_labels(features, logits).tolist()


def test_term_uses_target_rows_and_is_registered_as_source_free():
    method = get_method("shot")
    assert not method.needs_source and method.source_free.updates == "lora"
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    batch = AlignmentBatch(features=torch.zeros(2, 3), logits=logits, labels=torch.tensor([1, -100]),
                           domain_labels=torch.ones(2, dtype=torch.long))
    out = ShotTerm(ShotSettings(pseudo_label_weight=0.5))(batch)
    assert torch.allclose(out.loss, ShotLoss(0.5)(logits, torch.tensor([1, -100]))[0])
    assert set(out.logs) == {"shot_loss", "shot_entropy", "shot_diversity", "shot_pseudo_label_loss"}
