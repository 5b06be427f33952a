import math

import pytest
import torch

from hf_transfer.alignment import DomainAdversarialLoss, DomainDiscriminator, GradientReversalLayer, grl_lambda


@pytest.mark.parametrize("coeff", [0.0, 0.3, 1.0, 2.5])
def test_grl_is_identity_forward_and_negated_scaled_backward(coeff):
    x = torch.randn(5, 7, requires_grad=True)
    upstream = torch.randn(5, 7)
    layer = GradientReversalLayer()
    y = layer(x, coeff)
    assert torch.equal(y, x)
    y.backward(upstream)
    assert torch.allclose(x.grad, -coeff * upstream)


def test_dann_schedule_matches_paper_formula():
    assert grl_lambda(0, 100) == 0.0
    for step in (1, 10, 50, 99, 100):
        p = step / 100
        assert grl_lambda(step, 100) == pytest.approx(2 / (1 + math.exp(-10 * p)) - 1)
    assert grl_lambda(100, 100, gamma=5.0, max_lambda=0.5) == pytest.approx(0.5 * (2 / (1 + math.exp(-5)) - 1))
    values = [grl_lambda(s, 50) for s in range(51)]
    assert values == sorted(values) and values[-1] < 1.0
    assert grl_lambda(500, 50) == grl_lambda(50, 50)  # progress is clamped


def test_constant_schedule_and_errors():
    assert grl_lambda(3, 10, schedule="constant", max_lambda=0.7) == 0.7
    with pytest.raises(ValueError, match="Unknown GRL schedule"):
        grl_lambda(1, 10, schedule="linear")
    with pytest.raises(ValueError, match="max_steps"):
        grl_lambda(1, 0)


def test_discriminator_gets_plain_gradient_and_features_get_reversed_one():
    torch.manual_seed(0)
    disc = DomainDiscriminator(6, hidden_size=8, num_layers=2, dropout=0.0)
    loss_module = DomainAdversarialLoss(disc)
    features = torch.randn(8, 6, requires_grad=True)
    labels = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])

    out = loss_module(features, labels, grl_lambda=0.5)
    out.loss.backward()
    reversed_grad = features.grad.clone()
    disc_grad = [p.grad.clone() for p in disc.parameters()]

    features.grad = None
    disc.zero_grad()
    plain = torch.nn.functional.binary_cross_entropy_with_logits(disc(features), labels.float())
    plain.backward()
    assert torch.allclose(reversed_grad, -0.5 * features.grad, atol=1e-7)
    for a, p in zip(disc_grad, disc.parameters()):
        assert torch.allclose(a, p.grad)
    with torch.no_grad():
        expected_accuracy = ((disc(features) > 0).float() == labels.float()).float().mean()
    assert out.accuracy.item() == pytest.approx(expected_accuracy.item())


def test_discriminator_rejects_zero_layers():
    with pytest.raises(ValueError, match="at least one hidden layer"):
        DomainDiscriminator(4, num_layers=0)


def test_the_multi_class_discriminator_tells_k_sources_and_the_target_apart_behind_the_reversal():
    torch.manual_seed(0)
    disc = DomainDiscriminator(6, hidden_size=8, num_layers=1, dropout=0.0, num_domains=4)  # 3 sources + target
    loss_module = DomainAdversarialLoss(disc)
    features = torch.randn(8, 6, requires_grad=True)
    domain_ids = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])
    out = loss_module(features, domain_ids, grl_lambda=0.7)
    logits = disc(features)
    assert logits.shape == (8, 4)
    # cross-entropy over the 4 domains, by hand
    log_p = logits.log_softmax(-1)
    hand = -sum(log_p[i, domain_ids[i]] for i in range(8)) / 8
    assert out.loss.item() == pytest.approx(hand.item(), abs=1e-6)
    assert out.accuracy.item() == pytest.approx((logits.argmax(-1) == domain_ids).float().mean().item())
    out.loss.backward()
    reversed_grad = features.grad.clone()
    disc_grad = [p.grad.clone() for p in disc.parameters()]
    features.grad = None
    disc.zero_grad()
    torch.nn.functional.cross_entropy(disc(features), domain_ids).backward()
    assert torch.allclose(reversed_grad, -0.7 * features.grad, atol=1e-7)  # the features are pushed to confuse it
    for a, p in zip(disc_grad, disc.parameters()):
        assert torch.allclose(a, p.grad)  # the discriminator learns to tell the domains apart


def test_the_binary_head_and_its_saved_structure_are_unchanged_and_old_records_load():
    binary = DomainDiscriminator(6, hidden_size=8)
    assert binary.to_dict() == {"feature_dim": 6, "hidden_size": 8, "num_layers": 2, "dropout": 0.1}
    assert binary(torch.zeros(3, 6)).shape == (3,)
    several = DomainDiscriminator(6, hidden_size=8, num_domains=5)
    assert DomainDiscriminator.from_dict(several.to_dict()).num_domains == 5
    assert DomainDiscriminator.from_dict(binary.to_dict()).num_domains == 2  # a record without num_domains
    with pytest.raises(ValueError, match="at least 2 domains"):
        DomainDiscriminator(4, num_domains=1)


def test_the_dann_term_reads_domain_ids_for_a_multi_class_head_and_refuses_a_batch_without_them():
    from hf_transfer.alignment import AlignmentObjective
    from hf_transfer.alignment.registry import AlignmentBatch

    torch.manual_seed(0)
    head = DomainAdversarialLoss(DomainDiscriminator(4, hidden_size=8, num_domains=3, dropout=0.0))
    objective = AlignmentObjective.for_method("dann")
    features, logits = torch.randn(6, 4), torch.randn(6, 2)
    binary = torch.tensor([0, 0, 0, 0, 1, 1])
    ids = torch.tensor([0, 1, 0, 1, 2, 2])
    batch = AlignmentBatch(features=features, logits=logits, labels=None, domain_labels=binary, domain_ids=ids)
    out = objective(batch, domain_head=head, grl_lambda=1.0)
    expected = torch.nn.functional.cross_entropy(head.discriminator(features), ids)
    assert out.logs["domain_loss"].item() == pytest.approx(expected.item(), abs=1e-6)
    with pytest.raises(ValueError, match="no domain_ids"):
        objective(AlignmentBatch(features=features, logits=logits, labels=None, domain_labels=binary),
                  domain_head=head, grl_lambda=1.0)
