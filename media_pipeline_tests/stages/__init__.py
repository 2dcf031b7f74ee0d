"""Tests of media_pipeline/stages/."""
