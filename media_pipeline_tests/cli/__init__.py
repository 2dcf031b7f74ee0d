"""Tests of media_pipeline/cli/."""
