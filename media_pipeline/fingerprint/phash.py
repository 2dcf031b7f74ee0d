"""Perceptual hash (pHash) of images, for near-duplicate detection.

The classic 64-bit DCT hash: grayscale, shrink to 32x32, 2-D DCT-II, keep the 8x8 lowest
frequencies (DC term included) and set one bit per coefficient above their median. Low frequencies
describe the overall structure of a picture, so resizing, recompression and small colour shifts move
few bits, while unrelated pictures differ in about half of the 64 bits.

The DCT is done with a precomputed matrix in numpy (no scipy): ``D = C @ A @ C.T``.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

HASH_BITS = 64
_SIDE = 32  # resize target
_LOW = 8  # kept low-frequency block: 8x8 = 64 bits


def _dct_matrix(n: int) -> np.ndarray:
    """Orthonormal DCT-II matrix; its scaling does not matter for a median threshold."""
    k = np.arange(n).reshape(-1, 1)
    i = np.arange(n).reshape(1, -1)
    c = np.sqrt(2.0 / n) * np.cos(np.pi * (2 * i + 1) * k / (2 * n))
    c[0, :] = np.sqrt(1.0 / n)
    return c


_DCT = _dct_matrix(_SIDE)


def _grayscale(image: Image.Image) -> Image.Image:
    """8-bit luminance; transparent areas are flattened onto white so they hash as background."""
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("L")
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        # Wide-range modes: scale to 0..255 instead of letting convert() clip. Shrunk in the
        # native mode first, so no full-size float copy is made (8 bytes a pixel).
        arr = np.asarray(image.resize((_SIDE, _SIDE), Image.Resampling.LANCZOS),
                         dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        scaled = (arr - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(arr)
        return Image.fromarray(scaled.astype(np.uint8), mode="L")
    return image.convert("L")


def perceptual_hash(image: Image.Image) -> int:
    """64-bit DCT pHash of ``image`` as an unsigned int in ``[0, 2**64)``.

    Bits are packed row-major from the top-left DCT coefficient, most significant bit first. The
    pixels are hashed as stored: EXIF orientation is not applied, so a copy that was physically
    rotated hashes differently from one that only carries an Orientation tag.
    """
    small = _grayscale(image).resize((_SIDE, _SIDE), Image.Resampling.LANCZOS)
    pixels = np.asarray(small, dtype=np.float64)
    coefficients = _DCT @ pixels @ _DCT.T
    low = coefficients[:_LOW, :_LOW].ravel()
    bits = low > np.median(low)
    value = 0
    for bit in bits:
        value = (value << 1) | int(bit)
    return value


def hamming(a: int, b: int) -> int:
    """Number of differing bits between two hashes."""
    return (a ^ b).bit_count()
