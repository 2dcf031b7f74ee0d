"""A snapshot of everything Dagster sees: asset keys (group, deps, pool), asset checks, jobs,
schedules and sensors, compared exactly with ``definitions_snapshot.json``.

The snapshot was written from the definitions before they were split by domain; a change to
the definitions is a change to this file, on purpose. Regenerate it with
``python -m media_pipeline_tests.defs.test_definitions``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import dagster as dg

from media_pipeline.settings import Settings

SNAPSHOT = Path(__file__).with_name("definitions_snapshot.json")

SOURCES_YAML = """\
version: 1
sources:
  - name: cms-pages
    type: files
    root: {root}/pages
    content_type: webpage
  - name: blog.posts
    type: files
    root: {root}/blog
    content_type: post
"""


def _build(settings: Settings) -> dg.Definitions:
    from media_pipeline.definitions import build_definitions

    return build_definitions(settings)


def describe(defs: dg.Definitions) -> dict[str, Any]:
    """The parts of ``defs`` that must not change by accident, as plain JSON."""
    graph = defs.resolve_asset_graph()
    repository = defs.get_repository_def()
    assets = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        assets[key.to_user_string()] = {
            "group": node.group_name,
            "deps": sorted(k.to_user_string() for k in node.parent_keys),
            "pool": defs.resolve_assets_def(key).op.pool,
            "kinds": sorted(node.kinds),
            "description": node.description,
        }
    checks = {}
    for check_key in sorted(graph.asset_check_keys,
                            key=lambda c: (c.asset_key.to_user_string(), c.name)):
        spec = graph.get_check_spec(check_key)
        checks[f"{check_key.asset_key.to_user_string()}:{check_key.name}"] = spec.description
    jobs = {}
    for job in sorted(repository.get_all_jobs(), key=lambda j: j.name):
        if job.name.startswith("__"):  # Dagster's implicit asset job
            continue
        jobs[job.name] = {"nodes": sorted(n.name for n in job.nodes),
                          "description": job.description, "executor": job.executor_def.name}
    schedules = {
        s.name: {"job": s.job_name, "cron": s.cron_schedule, "timezone": s.execution_timezone,
                 "default_status": s.default_status.value}
        for s in sorted(repository.schedule_defs, key=lambda s: s.name)
    }
    sensors = {
        s.name: {"job": s.job_name, "minimum_interval_seconds": s.minimum_interval_seconds,
                 "default_status": s.default_status.value, "description": s.description}
        for s in sorted(repository.sensor_defs, key=lambda s: s.name)
    }
    return {"assets": assets, "asset_checks": checks, "jobs": jobs, "schedules": schedules,
            "sensors": sensors}


def environments(root: Path) -> dict[str, dict[str, str]]:
    """Four settings: nothing configured, two content sources plus an SQS queue, the Celery
    executor and the Kubernetes one."""
    (root / "pages").mkdir(parents=True, exist_ok=True)
    (root / "blog").mkdir(parents=True, exist_ok=True)
    sources = root / "sources.yaml"
    sources.write_text(SOURCES_YAML.format(root=root))
    base = {"MEDIA_PIPELINE_HOME": str(root / "home")}
    return {
        "nothing_configured": base,
        "two_sources_and_a_queue": {
            **base, "MEDIA_PIPELINE_SOURCES": str(sources),
            "MEDIA_PIPELINE_SQS_QUEUE_URL": "http://127.0.0.1:1/000000000000/q"},
        "steps_on_celery_workers": {**base, "MEDIA_PIPELINE_EXECUTOR": "celery"},
        "steps_as_kubernetes_jobs": {**base, "MEDIA_PIPELINE_EXECUTOR": "k8s"},
    }


def _describe_in_child(env: dict[str, str]) -> dict[str, Any]:
    """The description, from a fresh interpreter whose environment is ``env``: nothing
    imported earlier in this process can leak into it."""
    import os
    import subprocess

    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("AWS_", "MEDIA_PIPELINE", "DAGSTER_HOME"))}
    code = ("import json, sys; from media_pipeline_tests.defs.test_definitions import describe, "
            "_build; from media_pipeline.settings import Settings; "
            "json.dump(describe(_build(Settings.from_env())), sys.stdout)")
    out = subprocess.run([sys.executable, "-c", code], env={**clean, **env}, check=True,
                         capture_output=True, text=True, cwd=Path(__file__).parents[2])
    return dict(json.loads(out.stdout))


def current(root: Path) -> dict[str, Any]:
    return {name: _describe_in_child(env) for name, env in environments(root).items()}


def test_the_definitions_match_the_snapshot(tmp_path: Path) -> None:
    assert current(tmp_path) == json.loads(SNAPSHOT.read_text())


def test_importing_the_definitions_reads_no_environment() -> None:
    """Settings that cannot even be read do not stop `dagster dev` from importing the module:
    they are read when the definitions are built, and by the resource when a run uses it."""
    import os
    import subprocess

    env = {**os.environ, "MEDIA_PIPELINE_S3": "not-a-mode",
           "MEDIA_PIPELINE_SOURCES": "/nonexistent/sources.yaml"}
    code = "import media_pipeline.definitions as d; print(callable(d.defs))"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         cwd=Path(__file__).parents[2])
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "True"


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        SNAPSHOT.write_text(json.dumps(current(Path(tmp)), indent=2, sort_keys=True) + "\n")
    sys.stdout.write(f"wrote {SNAPSHOT}\n")
