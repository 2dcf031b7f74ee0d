"""The `media-pipeline` command.

Every command reads the same settings as the pipeline, prints data as a table (or JSON with
``--json``/``--format json``) and exits non-zero with a one-line reason on failure (the exit
codes: :mod:`media_pipeline.cli.output`).

One module per command family, each listing its commands in ``COMMANDS``; this module builds
the group from them, so no module imports another's commands:

- :mod:`~media_pipeline.cli.server`: ``s3-server``, ``demo``
- :mod:`~media_pipeline.cli.pipeline`: ``run``
- :mod:`~media_pipeline.cli.sources`: ``scan``, ``sources``
- :mod:`~media_pipeline.cli.catalog`: ``query``, ``health``
- :mod:`~media_pipeline.cli.ai`: ``analyze``
- :mod:`~media_pipeline.cli.application`: ``upload``, ``presign-upload``, ``url``,
  ``visibility``, ``tags``, ``collections``, ``namespaces``, ``members``
- :mod:`~media_pipeline.cli.lifecycle`: ``refs``, ``delete``, ``restore``, ``unpurge``,
  ``purge``
- :mod:`~media_pipeline.cli.report`: ``report``
- :mod:`~media_pipeline.cli.lake`: ``sql``, ``catalog migrate``, ``why-purged``
"""

from __future__ import annotations

import click

from media_pipeline.cli import (
    ai,
    application,
    catalog,
    lake,
    lifecycle,
    pipeline,
    report,
    server,
    sources,
)
from media_pipeline.cli.output import fail, friendly_errors

__all__ = ["fail", "friendly_errors", "main"]

FAMILIES = (server, pipeline, sources, catalog, ai, application, lifecycle, report, lake)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="media-pipeline")
def main() -> None:
    """Media file management for S3: catalog, fingerprints, duplicates and safe cleanup."""


for _family in FAMILIES:
    for _command in _family.COMMANDS:
        main.add_command(_command)
