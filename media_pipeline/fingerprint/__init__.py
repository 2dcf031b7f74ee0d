"""Fingerprints: streaming hash, sniffed type, metadata, perceptual hash and validation."""

from media_pipeline.fingerprint.phash import hamming, perceptual_hash
from media_pipeline.fingerprint.reader import (
    fingerprint_object,
    fingerprint_objects,
    fragment_schema,
    full_object_sha256,
    write_fragment,
)
from media_pipeline.fingerprint.sniff import sniff_mime
from media_pipeline.fingerprint.validate import validate

__all__ = [
    "fingerprint_object",
    "fingerprint_objects",
    "fragment_schema",
    "full_object_sha256",
    "hamming",
    "perceptual_hash",
    "sniff_mime",
    "validate",
    "write_fragment",
]
