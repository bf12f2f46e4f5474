"""The bundled 8x8 handwritten digits (UCI "Optical Recognition of Handwritten Digits").

1,797 images of the digits 0-9 by E. Alpaydin and C. Kaynak, CC BY 4.0; see
DIGITS-LICENSE.txt next to this file for the attribution. Stored as `digits.npz`
(uint8 pixels 0..16 and uint8 labels), about 45 KB.
"""

from __future__ import annotations

from importlib import resources

import numpy as np

from ..errors import DataFormatError

N_IMAGES = 1797
N_PIXELS = 64
MAX_PIXEL = 16  # each pixel counts the "on" dots in a 4x4 block of a 32x32 bitmap


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """The digits as `(X, y)`: X float32 (1797, 64) in [0, 1] (pixels / 16), y int64 in 0..9.

    Each row of X is an 8x8 image flattened row by row. The file ships inside the package,
    so this works offline.
    """
    source = resources.files(__package__).joinpath("digits.npz")
    with source.open("rb") as f, np.load(f, allow_pickle=False) as archive:
        images, labels = archive["images"], archive["labels"]
    if images.shape != (N_IMAGES, N_PIXELS) or labels.shape != (N_IMAGES,):
        raise DataFormatError(
            f"the bundled digits.npz is damaged: images {images.shape}, labels {labels.shape}, "
            f"expected ({N_IMAGES}, {N_PIXELS}) and ({N_IMAGES},); reinstall gpugrad"
        )
    X = images.astype(np.float32) / np.float32(MAX_PIXEL)
    return X, labels.astype(np.int64)
