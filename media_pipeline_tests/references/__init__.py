"""Tests of media_pipeline/references/."""
