"""End to end on a tiny config: the reversed gradient takes the domain discriminator's advantage away."""

import torch
from transformers import ViTForImageClassification

from hf_transfer.trainer import DomainAdaptationTrainer
from tests.conftest import build_model, make_domain, tiny_vit_config, train_args

INITS = (0, 1, 2)
"""Backbone initialisations averaged over: one init's late domain accuracy ranges from 0.68 to 0.84 without the
reversal (it moved below a single-init bound on another platform's torch), the mean of three is steadier."""


def _late_domain_accuracy(tmp_path, init: int, **kwargs):
    torch.manual_seed(init)
    backbone = ViTForImageClassification(tiny_vit_config())
    model = build_model(backbone, lora_target_modules="attention+conv", discriminator_hidden_size=32)
    trainer = DomainAdaptationTrainer(
        model=model,
        args=train_args(tmp_path, method="dann", max_steps=40, learning_rate=5e-3, **kwargs),
        source_dataset=make_domain(48, seed=1),
        target_dataset=make_domain(48, shift=1.5, seed=2, labelled=False),
    )
    trainer.train()
    logs = [h for h in trainer.state.log_history if "domain_accuracy" in h]
    assert len(logs) == 40 and all(torch.isfinite(torch.tensor(h["loss"])) for h in logs)
    return sum(h["domain_accuracy"] for h in logs[-15:]) / 15


def test_dann_reduces_the_domain_discriminators_advantage(tmp_path):
    # Same data, same discriminator, same optimiser, same inits; only the gradient reversal differs.
    without_reversal = sum(_late_domain_accuracy(tmp_path / f"lambda0-{i}", i, grl_schedule="constant",
                                                 grl_max_lambda=0.0) for i in INITS) / len(INITS)
    with_reversal = sum(_late_domain_accuracy(tmp_path / f"dann-{i}", i) for i in INITS) / len(INITS)
    assert without_reversal > 0.65  # the shift is plain: a free discriminator tells the domains apart (chance: 0.5)
    assert with_reversal < without_reversal - 0.15, (with_reversal, without_reversal)
