"""Tests of media_pipeline/storage/."""
