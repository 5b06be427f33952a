"""The objective: composed from the registry, passed to the model as a value, with λ per call."""

import pytest
import torch

from hf_transfer.alignment import AlignmentObjective
from hf_transfer.alignment.objective import PROBE
from tests.conftest import build_model, train_args
from tests.test_modeling import _batch


def test_composition_from_arguments_and_json_round_trip(tmp_path):
    objective = AlignmentObjective.from_arguments(
        train_args(tmp_path, method="dann", domain_loss_weight=0.3, mcc_loss_weight=0.5, mcc_temperature=2.0)
    )
    assert [(t.method, t.weight) for t in objective.terms] == [("dann", 0.3), ("mcc", 0.5)]
    assert objective.domain_head_kind == "domain" and objective.settings_of("mcc").temperature == 2.0
    assert AlignmentObjective.from_dict(objective.to_dict()) == objective
    card = objective.card()
    assert card.short == "DANN + MCC" and card.tags == ("dann", "mcc")
    baseline = AlignmentObjective.from_arguments(train_args(tmp_path, method="source_only"))
    assert baseline.terms == () and baseline.domain_head_kind is None and not baseline.card().uses_target


def test_a_method_without_a_discriminator_runs_the_domain_head_as_a_zero_weight_probe():
    model = build_model(objective="mmd").eval()
    pixels, labels, domains = _batch()
    out = model(pixel_values=pixels, labels=labels, domain_labels=domains, objective=AlignmentObjective.for_method("mmd"))
    assert {"domain_loss", "domain_accuracy", "mmd_loss"} <= set(out.alignment_logs)
    assert torch.allclose(out.loss, out.classification_loss + out.alignment_logs["mmd_loss"], atol=1e-6)
    assert [t.method for t, _, _ in AlignmentObjective.for_method("mmd")._built] == [PROBE, "mmd"]


@pytest.mark.parametrize("grl_lambda", [0.0, 0.25, 1.0])
def test_lambda_travels_with_the_call_to_the_reversed_gradient(grl_lambda):
    model = build_model()
    pixels, labels, domains = _batch()
    features = model.extract_features(pixel_values=pixels).requires_grad_(True)
    from hf_transfer.alignment.registry import AlignmentBatch

    batch = AlignmentBatch(features, model(pixel_values=pixels).logits.detach(), labels, domains)
    objective = AlignmentObjective.for_method("dann")
    objective(batch, domain_head=model.domain_loss, grl_lambda=grl_lambda).loss.backward()
    reversed_grad = features.grad.clone()
    features.grad = None
    torch.nn.functional.binary_cross_entropy_with_logits(
        model.domain_loss.discriminator(features), domains.float()
    ).backward()
    assert torch.allclose(reversed_grad, -grl_lambda * features.grad, atol=1e-7)
