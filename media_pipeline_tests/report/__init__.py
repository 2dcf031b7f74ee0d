"""Tests of media_pipeline/report/."""
