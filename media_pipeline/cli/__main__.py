"""``python -m media_pipeline.cli``: the `media-pipeline` command."""

from media_pipeline.cli import main

main()
