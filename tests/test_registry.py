"""The alignment-method registry: one entry per method, read by the arguments, the objective and the card."""

from dataclasses import dataclass

import pytest

from hf_transfer.alignment import registry
from hf_transfer.alignment.registry import (
    AlignmentBatch,
    AlignmentMethod,
    MethodCard,
    TermOutput,
    available_methods,
    get_method,
    register_method,
    settings_from_arguments,
    settings_from_dict,
    settings_to_dict,
)
from tests.conftest import build_model, make_domain, train_args


def test_built_in_methods_register_themselves_and_unknown_names_list_them():
    assert {"source_only", "dann", "cdan", "mcc", "mmd"} <= set(available_methods())
    assert get_method("cdan").needs_discriminator and not get_method("mcc").needs_discriminator
    with pytest.raises(ValueError, match="Unknown alignment method 'dan'; choose one of cdan, dann"):
        get_method("dan")


def test_settings_round_trip_and_come_from_their_argument_fields(tmp_path):
    cdan = get_method("cdan")
    args = train_args(tmp_path, method="cdan", cdan_entropy_conditioning=False, domain_loss_class_weighting=True)
    settings = settings_from_arguments(cdan, args)
    assert (settings.entropy_conditioning, settings.class_weighting, settings.randomized_dim) == (False, True, 1024)
    assert settings_from_dict(cdan, settings_to_dict(settings)) == settings
    with pytest.raises(ValueError, match=r"Unknown setting\(s\) \['map'\] for method 'cdan'"):
        settings_from_dict(cdan, {"map": "randomized"})


@dataclass
class _EntropySettings:
    scale: float = 1.0


class _EntropyTerm:
    """Mean prediction entropy of the target rows (a stand-in for a user's own method)."""

    def __init__(self, settings):
        self.scale = settings.scale

    def __call__(self, batch: AlignmentBatch, *, domain_head, grl_lambda):
        p = batch.logits[batch.domain_labels == 1].softmax(-1)
        loss = self.scale * -(p * p.clamp_min(1e-12).log()).sum(-1).mean()
        return TermOutput(loss, {"entropy_loss": loss.detach()})


@pytest.fixture
def entropy_method():
    method = register_method(AlignmentMethod(
        name="entropy_min", summary="target entropy minimisation (a test's own method)",
        settings_class=_EntropySettings, build_term=_EntropyTerm,
        card=MethodCard("entropy minimisation on the target", "EntMin", "Target predictions are made confident.",
                        ("entropy-minimisation",)),
        weight_argument="domain_loss_weight",
    ))
    yield method
    registry._REGISTRY.pop("entropy_min")


def test_a_method_registered_by_user_code_trains_saves_and_is_carded(tmp_path, entropy_method):
    from hf_transfer.alignment import AlignmentObjective
    from hf_transfer.cards import build_model_card
    from hf_transfer.trainer import DomainAdaptationTrainer

    args = train_args(tmp_path, method="entropy_min", domain_loss_weight=0.5, method_settings="scale=2",
                      max_steps=2)
    objective = AlignmentObjective.from_arguments(args)
    assert objective.weight_of("entropy_min") == 0.5 and objective.settings_of("entropy_min").scale == 2
    trainer = DomainAdaptationTrainer(model=build_model(objective=objective), args=args,
                                      source_dataset=make_domain(8), target_dataset=make_domain(8, labelled=False))
    trainer.train()
    assert all("entropy_loss" in h and "domain_accuracy" in h for h in trainer.state.log_history if "loss" in h)
    trainer.save_model(str(tmp_path / "saved"))
    card = build_model_card(tmp_path / "saved", repo_id="org/entmin")
    assert "entropy-minimisation" in card.data.tags and "entropy minimisation on the target" in card.content
    with pytest.raises(ValueError, match="already registered"):
        register_method(AlignmentMethod(name="entropy_min", summary="another", settings_class=_EntropySettings,
                                        build_term=None, card=entropy_method.card))
