"""Dagster glue: thin assets, checks, jobs and resources over the library."""
