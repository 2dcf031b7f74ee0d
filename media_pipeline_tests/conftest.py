"""Fixtures shared by the test modules."""

from media_pipeline_tests.fixtures_s3 import *  # noqa
