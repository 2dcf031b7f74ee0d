"""Tests of media_pipeline/defs/."""
