#!/usr/bin/env bash
# The project's commands; each sets everything up first (scripts/bootstrap.sh) on a fresh Debian.
#   ./dev.sh demo        embedded S3 + sample corpus + a full pipeline run + summary (--no-ai, --json)
#   ./dev.sh test        ruff, mypy and the whole test suite
#   ./dev.sh bench       the benchmarks (minutes; not part of the tests)
#   ./dev.sh s3-server   the embedded S3 server on 127.0.0.1:9100, seeded with the sample corpus
#   ./dev.sh ui          `dagster dev` on embedded defaults (run ./dev.sh s3-server beside it)
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/bootstrap.sh

case "${1:-}" in
  demo)
    exec .venv/bin/media-pipeline demo "${@:2}" ;;
  test)
    .venv/bin/ruff check media_pipeline media_pipeline_tests benchmarks
    .venv/bin/mypy
    # Three workers on two cores: most tests wait (commits, child processes, S3 over HTTP).
    exec .venv/bin/pytest -q -n 3 ;;
  bench)
    exec .venv/bin/python -m benchmarks ;;
  s3-server)
    exec .venv/bin/media-pipeline s3-server --seed ;;
  ui)
    mkdir -p .dagster_home && cp dagster.yaml .dagster_home/dagster.yaml
    # Dagster's code server and run workers find the catalog here whatever folder they run in.
    export MEDIA_PIPELINE_HOME="${MEDIA_PIPELINE_HOME:-$PWD/.media_pipeline}"
    DAGSTER_HOME="$PWD/.dagster_home" exec .venv/bin/dagster dev -w workspace.yaml ;;
  *)
    sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'
    exit 2 ;;
esac
