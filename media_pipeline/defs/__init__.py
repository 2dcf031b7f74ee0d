"""Dagster glue by domain: thin assets, checks, jobs, schedules and sensors over the library.

Each domain package exports its definitions (``defs``, or ``build_defs(settings)`` where they
depend on the settings); ``media_pipeline/definitions.py`` merges them. ``resources`` holds
the one resource the assets use; ``execution`` runs the assets in-process for the CLI.
"""
