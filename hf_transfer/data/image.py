"""Image decoding for domain datasets.

Image columns are kept *undecoded* in the dataset (``datasets.Image(decode=False)``
gives ``{"bytes": ..., "path": ...}`` dicts) and decoded here, lazily, inside the
transform.  Decoding in one place means a corrupt file always fails with an error
that names the file instead of deep inside a DataLoader worker.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from typing import Any

from PIL import Image as PILImage

from ..modalities import IMAGE

IMAGE_EXTENSIONS: frozenset[str] = IMAGE.file_suffixes


class ImageDecodeError(ValueError):
    """An image could not be opened or decoded; the message names the file."""


def describe_source(value: Any) -> str:
    """A short human-readable name for an image/audio value (its path when known)."""
    if isinstance(value, (str, os.PathLike)):
        return str(value)
    if isinstance(value, dict):
        if value.get("path"):
            return str(value["path"])
        if value.get("bytes") is not None:
            return f"<{len(value['bytes'])} in-memory bytes>"
    if isinstance(value, (bytes, bytearray)):
        return f"<{len(value)} in-memory bytes>"
    return f"<{type(value).__name__}>"


def load_image(value: Any) -> PILImage.Image:
    """Open ``value`` as an RGB PIL image.

    Accepts a PIL image, a path, raw bytes, or a ``{"bytes", "path"}`` dict as
    stored by ``datasets.Image(decode=False)``.  The pixels are fully loaded (not
    just the header) so truncated files are caught here.  RGB conversion makes
    grayscale/RGBA/palette images look the same to every image processor.
    """
    if isinstance(value, PILImage.Image):
        image = value
    else:
        name = describe_source(value)
        try:
            if isinstance(value, dict):
                data = value.get("bytes")
                path = value.get("path")
                if data is not None:
                    image = PILImage.open(io.BytesIO(data))
                elif path:
                    image = PILImage.open(path)
                else:
                    raise ValueError("empty image value (no bytes and no path)")
            elif isinstance(value, (bytes, bytearray)):
                image = PILImage.open(io.BytesIO(value))
            elif isinstance(value, (str, os.PathLike)):
                image = PILImage.open(value)
            elif value is None:
                raise ValueError("missing image (None)")
            else:
                raise TypeError(f"unsupported image value of type {type(value).__name__}")
            image.load()
        except Exception as err:  # PIL raises many exception types for bad files
            raise ImageDecodeError(f"Could not read image {name}: {err}") from err
    if image.mode != "RGB":
        image = image.convert("RGB")
    return image


@dataclass(frozen=True)
class CenterCrop:
    """Keep the central ``fraction`` of an image's shorter side (a square), before any resizing.

    Why: two domains can differ in *field of view* — one hospital's scanner frames a cell in
    a wide 360-px field, another's crops tightly around it — and a CNN is not scale-invariant.
    Cropping one domain to the other's magnification removes that geometric shift, which no
    feature alignment can undo cheaply. It is set per domain (``DomainDataArguments.center_crop``)
    and applied to that domain's training and evaluation images alike; it needs no labels, only
    a look at the images.
    """

    fraction: float

    def __post_init__(self) -> None:
        if not 0.0 < self.fraction <= 1.0:
            raise ValueError(
                f"center_crop must be in (0, 1], got {self.fraction}: it is the fraction of the shorter image side "
                "kept around the centre (1.0 = no crop)."
            )

    def __call__(self, image: PILImage.Image) -> PILImage.Image:
        if self.fraction == 1.0:
            return image
        width, height = image.size
        side = max(1, round(min(width, height) * self.fraction))
        left, top = (width - side) // 2, (height - side) // 2
        return image.crop((left, top, left + side, top + side))
