"""``python -m media_pipeline``: the `media-pipeline` command."""

from media_pipeline.cli import main

main()
