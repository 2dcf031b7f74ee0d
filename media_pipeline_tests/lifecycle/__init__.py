"""Tests of media_pipeline/lifecycle/."""
