# The two commands: `make demo` and `make test`. Both set everything up on a fresh Debian machine.
.PHONY: demo test lint bench dev s3-server bootstrap clean

export MEDIA_PIPELINE_HOME ?= $(CURDIR)/.media_pipeline

bootstrap:
	@bash scripts/bootstrap.sh

demo: bootstrap
	.venv/bin/media-pipeline demo

test: bootstrap
	.venv/bin/ruff check media_pipeline media_pipeline_tests benchmarks
	.venv/bin/mypy
	.venv/bin/pytest -q

lint: bootstrap
	.venv/bin/ruff check media_pipeline media_pipeline_tests benchmarks
	.venv/bin/mypy

bench: bootstrap
	.venv/bin/python -m benchmarks

# The Dagster UI on embedded defaults: run `make s3-server` in another terminal first.
dev: bootstrap
	mkdir -p .dagster_home && cp dagster.yaml .dagster_home/dagster.yaml
	DAGSTER_HOME=$(CURDIR)/.dagster_home .venv/bin/dagster dev -w workspace.yaml

s3-server: bootstrap
	.venv/bin/media-pipeline s3-server --seed

clean:
	rm -rf .media_pipeline .dagster_home benchmarks/.data
