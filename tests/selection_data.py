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
