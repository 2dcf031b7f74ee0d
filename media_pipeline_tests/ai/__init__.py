"""Tests of media_pipeline/ai/."""
