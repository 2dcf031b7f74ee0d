"""Fixtures shared by the test modules."""

import os

from media_pipeline_tests.fixtures_s3 import *  # noqa

# Image embeddings for near-duplicates cost ~0.1 s an image: the tests that are about them
# (test_near_duplicates.py) turn them on; elsewhere the hash methods are enough.
os.environ.setdefault("MEDIA_PIPELINE_NEAR_DUPLICATE_EMBEDDINGS", "0")
