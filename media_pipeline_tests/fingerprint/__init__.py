"""Tests of media_pipeline/fingerprint/."""
