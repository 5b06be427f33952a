"""What an adapted-model folder holds: one home for its file names.

A folder written by :meth:`~hf_transfer.modeling.DomainAdaptationModel.save_pretrained` (and pushed by
:mod:`hf_transfer.hub`) is a standard peft adapter plus two hf_transfer files:

* ``adapter_config.json`` + ``adapter_model.safetensors``: the LoRA adapter and the trained head (peft);
* ``domain_discriminator.safetensors``: the domain discriminator, to continue adapting;
* ``domain_adaptation.json``: the run info (method, domains, settings, metrics), read by the card,
  the Hub push and ``hf-transfer evaluate``;
* ``README.md``: the model card.
"""

from __future__ import annotations

ADAPTER_CONFIG_NAME = "adapter_config.json"
ADAPTER_WEIGHTS_NAME = "adapter_model.safetensors"
DISCRIMINATOR_WEIGHTS_NAME = "domain_discriminator.safetensors"
RUN_INFO_NAME = "domain_adaptation.json"
MODEL_CARD_NAME = "README.md"
TRAINING_ARGS_NAME = "training_args.bin"
