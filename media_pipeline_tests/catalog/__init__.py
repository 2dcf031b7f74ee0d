"""Tests of media_pipeline/catalog/."""
