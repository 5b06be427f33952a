"""Conditional domain-adversarial loss: the maps, entropy conditioning, the model, the Trainer, save/load."""

import pytest
import torch

import torch.nn.functional as F

from hf_transfer.alignment import AlignmentObjective

from hf_transfer.alignment import (
    ConditionalDomainAdversarialLoss,
    DomainDiscriminator,
    MultilinearMap,
    RandomizedMultilinearMap,
)
from hf_transfer.alignment.cdan import CdanSettings, ConditionalAdversarialTerm, conditioning_map
from hf_transfer.alignment.registry import AlignmentBatch
from tests.conftest import build_model, make_domain, train_args
from tests.test_modeling import _batch


def test_multilinear_map_is_the_flattened_outer_product():
    torch.manual_seed(0)
    f, g = torch.randn(5, 4), torch.softmax(torch.randn(5, 3), dim=1)
    mapped = MultilinearMap(4, 3)(f, g)
    assert mapped.shape == (5, 12)
    for i in range(5):
        assert torch.allclose(mapped[i], torch.outer(g[i], f[i]).flatten())


def test_randomized_map_is_seeded_and_approximates_the_multilinear_inner_products():
    torch.manual_seed(0)
    f, g = torch.randn(6, 8), torch.softmax(torch.randn(6, 3) * 2, dim=1)
    first, again = RandomizedMultilinearMap(8, 3, 4096, seed=1), RandomizedMultilinearMap(8, 3, 4096, seed=1)
    assert torch.equal(first(f, g), again(f, g))  # rebuilt identically from the seed: nothing to save
    assert not torch.equal(first(f, g), RandomizedMultilinearMap(8, 3, 4096, seed=2)(f, g))
    assert not list(first.state_dict())  # non-persistent: never written into checkpoints
    exact, approx = MultilinearMap(8, 3)(f, g), first(f, g)
    # E[<T⊙(a), T⊙(b)>] = <f_a, f_b><g_a, g_b> = <T⊗(a), T⊗(b)>
    assert torch.allclose(approx @ approx.T, exact @ exact.T, rtol=0.3, atol=0.3 * exact.norm(dim=1).max() ** 2)


def test_conditioning_map_switches_to_randomized_above_4096():
    assert isinstance(conditioning_map(1024, 4), MultilinearMap)
    large = conditioning_map(1025, 4, randomized_dim=512)
    assert isinstance(large, RandomizedMultilinearMap) and large.output_dim == 512


def _cdan_term(head, features, domains, logits, entropy_conditioning, labels=None):
    term = ConditionalAdversarialTerm(CdanSettings(entropy_conditioning=entropy_conditioning))
    return term(AlignmentBatch(features, logits, labels, domains), domain_head=head, grl_lambda=1.0)


def test_loss_is_weighted_bce_of_the_conditioned_features_and_predictions_are_detached():
    torch.manual_seed(0)
    loss_fn = ConditionalDomainAdversarialLoss.build(4, 3, hidden_size=8, dropout=0.0, entropy_conditioning=True)
    features = torch.randn(6, 4, requires_grad=True)
    logits = torch.randn(6, 3, requires_grad=True)
    domains = torch.tensor([0, 0, 0, 1, 1, 1])
    out = _cdan_term(loss_fn, features, domains, logits, entropy_conditioning=True)
    g = logits.detach().softmax(1)
    entropy = -(g * g.log()).sum(1)
    w = 1 + torch.exp(-entropy)
    w = w * 6 / w.sum()
    d = loss_fn.discriminator(MultilinearMap(4, 3)(features, g))
    expected = F.binary_cross_entropy_with_logits(d, domains.float(), weight=w)
    assert torch.allclose(out.loss, expected)
    out.loss.backward()
    assert features.grad is not None and features.grad.abs().sum() > 0
    assert logits.grad is None  # the adversary never moves the predictions directly


def test_entropy_conditioning_off_gives_plain_bce_and_extra_weights_multiply():
    torch.manual_seed(0)
    loss_fn = ConditionalDomainAdversarialLoss.build(4, 2, hidden_size=8, dropout=0.0, entropy_conditioning=False)
    features, logits = torch.randn(4, 4), torch.randn(4, 2)
    domains = torch.tensor([0, 0, 1, 1])
    d = loss_fn.discriminator(MultilinearMap(4, 2)(features, logits.softmax(1)))
    assert torch.allclose(_cdan_term(loss_fn, features, domains, logits, entropy_conditioning=False).loss,
                          F.binary_cross_entropy_with_logits(d, domains.float()))
    weights = torch.tensor([2.0, 0.0, 1.0, 1.0])
    assert torch.allclose(loss_fn(features, domains, weights, logits=logits).loss,
                          F.binary_cross_entropy_with_logits(d, domains.float(), weight=weights))


def test_bad_construction_is_a_clear_error():
    with pytest.raises(ValueError, match="at least 2 classes"):
        ConditionalDomainAdversarialLoss.build(4, 1)
    with pytest.raises(ValueError, match="conditioning map gives 12"):
        ConditionalDomainAdversarialLoss(DomainDiscriminator(4), MultilinearMap(4, 3))
    with pytest.raises(ValueError, match="pass logits="):
        ConditionalDomainAdversarialLoss.build(4, 3)(torch.randn(2, 4), torch.tensor([0, 1]))


def test_model_with_conditional_discriminator_trains_and_reloads_identically(tmp_path):
    from hf_transfer.modeling import DomainAdaptationModel
    from hf_transfer.trainer import DomainAdaptationTrainer

    torch.manual_seed(0)
    model = build_model(objective="cdan")
    assert model.domain_head_kind == "conditional"
    assert model.run_info.conditioning["map"] == "multilinear"
    assert model.run_info.discriminator["feature_dim"] == 32 * 3  # ViT hidden 32 × 3 classes
    args = train_args(tmp_path, method="cdan", max_steps=3)
    trainer = DomainAdaptationTrainer(model=model, args=args, source_dataset=make_domain(8),
                                      target_dataset=make_domain(8, shift=1.0, labelled=False))
    before = {n: p.detach().clone() for n, p in model.domain_loss.discriminator.named_parameters()}
    trainer.train()
    assert any(not torch.equal(before[n], p) for n, p in model.domain_loss.discriminator.named_parameters())
    logged = [e for e in trainer.state.log_history if "domain_loss" in e]
    assert logged and all(e["domain_loss"] > 0 for e in logged)
    assert model.run_info.method == "cdan"

    trainer.save_model(str(tmp_path / "saved"))
    base = build_model(objective="cdan").model.base_model.model  # same seed: same frozen base
    reloaded = DomainAdaptationModel.from_pretrained(tmp_path / "saved", base_model=base)
    assert reloaded.domain_head_kind == "conditional"
    _assert_same_outputs(model, reloaded)


def _assert_same_outputs(model, reloaded):
    """Same logits and the same domain loss: same adapter, same discriminator, same conditioning map."""
    model.eval()
    pixels, labels, domains = _batch()
    with torch.no_grad():
        a = model(pixel_values=pixels, labels=labels, domain_labels=domains)
        b = reloaded(pixel_values=pixels, labels=labels, domain_labels=domains)
    assert torch.allclose(a.logits, b.logits, atol=1e-6)
    assert torch.allclose(a.domain_loss, b.domain_loss, atol=1e-6)


def test_randomized_conditioning_survives_a_reload(tmp_path):
    from hf_transfer.modeling import DomainAdaptationModel

    torch.manual_seed(0)
    model = build_model(objective="cdan")
    model.domain_loss = ConditionalDomainAdversarialLoss.build(32, 3, hidden_size=16, map_kind="randomized",
                                                               randomized_dim=16, seed=3)
    model.run_info.conditioning = model.domain_loss.settings
    model.run_info.discriminator = model.domain_loss.discriminator.to_dict()
    model.save_pretrained(tmp_path / "saved")
    reloaded = DomainAdaptationModel.from_pretrained(tmp_path / "saved", base_model=build_model().model.base_model.model)
    assert isinstance(reloaded.domain_loss.conditioning, RandomizedMultilinearMap)
    _assert_same_outputs(model, reloaded)


def test_method_and_discriminator_kind_must_match(tmp_path):
    from hf_transfer.trainer import DomainAdaptationTrainer

    source, target = make_domain(4), make_domain(4, labelled=False)
    with pytest.raises(ValueError, match="'conditional' domain head but the model has a 'domain' one"):
        DomainAdaptationTrainer(model=build_model(), args=train_args(tmp_path, method="cdan"),
                                source_dataset=source, target_dataset=target)
    with pytest.raises(ValueError, match="'domain' domain head but the model has a 'conditional' one"):
        DomainAdaptationTrainer(model=build_model(objective="cdan"), args=train_args(tmp_path, method="dann"),
                                source_dataset=source, target_dataset=target)
    # baselines run either model: the head is only a zero-weight probe
    DomainAdaptationTrainer(model=build_model(objective="cdan"), args=train_args(tmp_path, method="source_only"),
                            source_dataset=source, target_dataset=target)
    args = train_args(tmp_path, method="cdan", domain_loss_weight=0.4)
    objective = AlignmentObjective.from_arguments(args)
    assert objective.weight_of("cdan") == 0.4 and objective.weight_of("mcc") == 0.0
    with pytest.raises(ValueError, match="cdan_randomized_dim"):
        train_args(tmp_path, method="cdan", cdan_randomized_dim=0)


def test_binary_tasks_warn_when_the_adversary_can_win_by_collapsing(tmp_path, caplog):
    import logging
    import math

    from hf_transfer.trainer import DomainAdaptationTrainer, collapse_bound
    from tests.conftest import tiny_vit_config
    from transformers import ViTForImageClassification

    assert collapse_bound(2) == pytest.approx((math.log(2) - 0.35) / math.log(2))
    assert collapse_bound(10) > 2.5
    source = [dict(e, labels=e["labels"] % 2) for e in make_domain(4)]
    target = make_domain(4, labelled=False)

    def warnings_for(num_labels, **kwargs):
        caplog.clear()
        torch.manual_seed(0)
        model = build_model(ViTForImageClassification(tiny_vit_config(num_labels=num_labels)))
        with caplog.at_level(logging.WARNING, logger="hf_transfer.trainer"):
            DomainAdaptationTrainer(model=model, args=train_args(tmp_path, **kwargs), source_dataset=source,
                                    target_dataset=target)
        return [r.message for r in caplog.records if "collapse bound" in r.message]

    assert warnings_for(2, method="dann", domain_loss_weight=1.0)
    assert not warnings_for(2, method="dann", domain_loss_weight=0.3)
    assert not warnings_for(2, method="source_only")
    assert not warnings_for(3, method="dann", domain_loss_weight=1.0)  # (log 3 - 0.35) / log 2 > 1
