"""Tests of media_pipeline/inventory/."""
