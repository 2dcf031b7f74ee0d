"""Tests of media_pipeline/dedup/."""
