"""The near-duplicates stage: features for new pictures, then every pair, by method.

Features and thumbnails are computed once per content hash, for active images only (a
quarantined file's bytes are never decoded here): each picture is read from S3 once (within
MAX_FILE_SIZE), decoded with Pillow within the fingerprint limits, hashed, embedded when the
``ai-vision`` extra is installed, and shrunk to a thumbnail. The reads and the model run outside
the catalog; the catalog is opened for the short commits.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
from botocore.exceptions import BotoCoreError, ClientError
from PIL import Image

from media_pipeline.dedup import detect
from media_pipeline.dedup.features import (
    FEATURES_REVISION,
    Embedder,
    decode,
    embedder_or_reason,
    hash_features,
)
from media_pipeline.errors import UnreadableImageError
from media_pipeline.fingerprint.metadata import InspectLimits
from media_pipeline.report.thumbnails import make_thumbnail
from media_pipeline.settings import Settings

CHUNK = 256  # pictures read and embedded between commits
READERS = 4


@dataclass
class NearDuplicateStats:
    pairs: int = 0
    by_method: dict[str, int] = field(default_factory=dict)
    features_computed: int = 0
    feature_errors: int = 0
    embedder: str | None = None
    skipped: list[str] = field(default_factory=list)  # what could not run, and why
    seconds: float = 0.0


class _ReadFailed(UnreadableImageError):
    """S3 could not give the object now (an error, a timeout): not remembered, the next run
    tries again, unlike a picture that cannot be decoded."""


def read_and_decode(client: Any, item: dict[str, Any], settings: Settings) -> Image.Image:
    """The picture behind one catalog row, decoded within the limits (UnreadableImageError)."""
    if item["file_size"] > settings.max_file_size:
        raise UnreadableImageError("larger than MAX_FILE_SIZE")
    try:
        body = client.get_object(Bucket=item["bucket"], Key=item["key"])["Body"]
        data = body.read(settings.max_file_size + 1)
    except (ClientError, BotoCoreError) as exc:
        raise _ReadFailed(f"cannot read the object: {exc}") from None
    if len(data) > settings.max_file_size:
        raise UnreadableImageError("larger than MAX_FILE_SIZE")
    return decode(data, InspectLimits.from_settings(settings))


def compute_features(settings: Settings, client: Any, items: list[dict[str, Any]],
                     embedder: Embedder | None) -> tuple[list[dict[str, Any]],
                                                         list[dict[str, Any]]]:
    """Feature rows and thumbnail rows for ``items`` (one per content hash)."""
    with ThreadPoolExecutor(READERS) as pool:
        decoded = list(pool.map(lambda item: _try(read_and_decode, client, item, settings),
                                items))
    features: list[dict[str, Any]] = []
    thumbs: list[dict[str, Any]] = []
    good = [(item, image) for item, image in zip(items, decoded, strict=True)
            if isinstance(image, Image.Image)]
    vectors = embedder.embed([image for _, image in good]) if embedder and good else None
    name = embedder.name if embedder else None
    for k, (item, image) in enumerate(good):
        hashes = hash_features(image)
        features.append({"file_hash": item["file_hash"], "revision": FEATURES_REVISION,
                         "trimmed_phash": hashes.trimmed, "mirrored_phash": hashes.mirrored,
                         "layout": hashes.layout.tolist(), "colours": hashes.colours.tolist(),
                         "embedding": vectors[k].tolist() if vectors is not None else None,
                         "embedder": name})
        thumbs.append({"file_hash": item["file_hash"], **make_thumbnail(image)})
    for item, result in zip(items, decoded, strict=True):
        if not isinstance(result, Image.Image) and not isinstance(result, _ReadFailed):
            features.append({"file_hash": item["file_hash"], "revision": FEATURES_REVISION,
                             "error": str(result)[:300]})
            thumbs.append({"file_hash": item["file_hash"], "error": str(result)[:300]})
    return features, thumbs


def _try(fn: Callable[..., Image.Image], *args: Any) -> Image.Image | UnreadableImageError:
    try:
        return fn(*args)
    except UnreadableImageError as exc:
        return exc


def rebuild_near_duplicates(settings: Settings, client: Any,
                            open_catalog: Callable[[Settings], Any]) -> NearDuplicateStats:
    """Compute missing features, then rebuild ``near_duplicates`` with every method available."""
    started = time.monotonic()
    stats = NearDuplicateStats()
    embedder: Embedder | None = None
    if settings.near_duplicate_embeddings:
        embedder, reason = embedder_or_reason()
        if embedder is None:
            stats.skipped.append(f"embedding (crops, rotations, watermarks): {reason}")
    else:
        stats.skipped.append("embedding (crops, rotations, watermarks): turned off by "
                             "MEDIA_PIPELINE_NEAR_DUPLICATE_EMBEDDINGS")
    stats.embedder = embedder.name if embedder else None
    with open_catalog(settings) as catalog:
        todo = catalog.dedup.images_needing_features(FEATURES_REVISION, stats.embedder)
    for start in range(0, len(todo), CHUNK):
        features, thumbs = compute_features(settings, client, todo[start:start + CHUNK],
                                            embedder)
        with open_catalog(settings) as catalog:
            catalog.dedup.store_image_features(features)
            catalog.dedup.store_thumbnails(thumbs)
        stats.features_computed += sum(1 for f in features if not f.get("error"))
        stats.feature_errors += sum(1 for f in features if f.get("error"))
        stats.feature_errors += len(todo[start:start + CHUNK]) - len(features)  # S3 read failed
    with open_catalog(settings) as catalog:
        pairs = None
        if stats.embedder:
            hashes, vectors, layouts, colours = catalog.dedup.image_embeddings(stats.embedder)
            if len(hashes) > 1:
                i, j, cosine = detect.embedding_pairs(vectors)
                keep = detect.layouts_agree(layouts, i, j) & detect.colours_agree(colours, i, j)
                i, j, cosine = i[keep], j[keep], cosine[keep]
                keep = ~detect.crowded(i, j, len(hashes))
                i, j, cosine = i[keep], j[keep], cosine[keep]
                pairs = pa.table({"hash_a": pa.array([hashes[x] for x in i], pa.string()),
                                  "hash_b": pa.array([hashes[x] for x in j], pa.string()),
                                  "cosine": pa.array(cosine.astype("float64"))})
        stats.by_method = catalog.dedup.replace_near_duplicates(
            settings.near_duplicate_distance, pairs)
    stats.pairs = sum(stats.by_method.values())
    stats.seconds = time.monotonic() - started
    return stats


def ensure_thumbnails(settings: Settings, client: Any, open_catalog: Callable[[Settings], Any],
                      file_hashes: Iterable[str]) -> int:
    """Make the thumbnails the report needs that no run has made yet; returns how many."""
    with open_catalog(settings) as catalog:
        todo = catalog.dedup.thumbnails_missing(sorted(set(file_hashes)))
    made = 0
    for start in range(0, len(todo), CHUNK):
        chunk = todo[start:start + CHUNK]
        with ThreadPoolExecutor(READERS) as pool:
            decoded = list(pool.map(lambda item: _try(read_and_decode, client, item, settings),
                                    chunk))
        rows = [{"file_hash": item["file_hash"], **make_thumbnail(image)}
                if isinstance(image, Image.Image)
                else {"file_hash": item["file_hash"], "error": str(image)[:300]}
                for item, image in zip(chunk, decoded, strict=True)
                if not isinstance(image, _ReadFailed)]
        with open_catalog(settings) as catalog:
            catalog.dedup.store_thumbnails(rows)
        made += sum(1 for r in rows if r.get("jpeg"))
    return made
