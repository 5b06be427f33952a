"""Tiny image domains for the selection tests (sweep, diagnose, pictures): seeded, independent of the folder path."""

from __future__ import annotations


def image_tree(root, n, shift, seed):
    """``n`` 16×16 PNGs per class under ``root/<class>``: class "a" is reddish, "b" greenish; ``shift`` brightens."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    for label, name in enumerate(["a", "b"]):
        (root / name).mkdir(parents=True)
        for i in range(n):
            pixels = rng.integers(0, 60, size=(16, 16, 3))
            pixels[:, :, label] += 150
            Image.fromarray(np.clip(pixels + shift, 0, 255).astype("uint8")).save(root / name / f"{i}.png")


def domains_and_vit(root, train, test, target_shift):
    """``root/{source,target}/{train,test}`` image trees (``train``/``test`` per class, the target brightened by
    ``target_shift``) and a tiny random ViT with its processor in ``root/vit``, whose path is returned."""
    import torch
    from transformers import ViTForImageClassification, ViTImageProcessor

    from tests.conftest import tiny_vit_config

    for seed, (domain, shift) in enumerate((("source", 0), ("target", target_shift))):
        image_tree(root / domain / "train", train, shift, seed)
        image_tree(root / domain / "test", test, shift, seed + 10)
    torch.manual_seed(0)
    ViTForImageClassification(tiny_vit_config(num_labels=2)).save_pretrained(root / "vit")
    ViTImageProcessor(size={"height": 16, "width": 16}).save_pretrained(root / "vit")
    return root / "vit"
