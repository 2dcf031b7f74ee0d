"""Content sources, reference extraction and the reference index."""
