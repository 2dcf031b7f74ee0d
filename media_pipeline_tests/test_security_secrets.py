"""Issue 11, item 4: database passwords never show, whatever characters they hold and however
they are written (from the environment, percent-encoded, as ``?password=``): not in source
descriptions, errors, scan output, Dagster metadata, logs, ``source_scans`` or ``audit_log``."""

from __future__ import annotations

import json
import logging
import string
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import dagster as dg
import pytest
import yaml
from click.testing import CliRunner

from media_pipeline.cli import main as cli
from media_pipeline.defs.references import build_source_asset, content_sources
from media_pipeline.references.sources import SourceError
from media_pipeline.references.sources.config import SourceConfigError, load_sources_text
from media_pipeline.settings import Settings
from media_pipeline_tests.app_fixtures import catalog_text
from media_pipeline_tests.fixtures_s3 import dagster_resources, env_for

BASE = "Qz7Lm2pXk9"
# Every special character at the start, in the middle and at the end, and the issue's own.
PASSWORDS = ["Xk9@Qz7#Lm2p"] + [
    spelled for c in string.punctuation + " "
    for spelled in (c + BASE, BASE[:5] + c + BASE[5:], BASE + c)]
# Nothing listens on port 1: the connection is refused at once, and the error is shown.
HOST = "127.0.0.1:1"
SPELLINGS = {
    "environment": f"postgresql+psycopg://reader:${{CMS_DB_PASSWORD}}@{HOST}/cms",
    "percent-encoded": "postgresql+psycopg://reader:{encoded}@" + HOST + "/cms",
    "raw": "postgresql+psycopg://reader:{raw}@" + HOST + "/cms",
    "query": f"postgresql+psycopg://reader@{HOST}/cms?sslmode=disable"
             f"&password=${{CMS_DB_PASSWORD}}",
    "libpq-sslpassword": f"postgresql+psycopg://reader@{HOST}/cms?sslpassword=${{CMS_DB_PASSWORD}}",
}


def leaks(text: str, secret: str) -> list[str]:
    """Every spelling of the secret, or any 3 characters of it in a row, found in ``text``."""
    forms = {secret, quote(secret, safe=""), quote_plus(secret), quote(secret)}
    fragments = {secret[i:i + 3] for i in range(len(secret) - 2)}
    return sorted(f for f in forms | fragments if f in text)


def sources_yaml(url: str) -> str:
    return yaml.safe_dump({"sources": [{
        "name": "cms", "type": "sql", "url": url,
        "query": "SELECT 'webpage' AS content_type, 1 AS content_id, '' AS text"}]})


def url_for(spelling: str, password: str) -> str:
    return (SPELLINGS[spelling].replace("{encoded}", quote(password, safe=""))
            .replace("{raw}", password))


@pytest.mark.parametrize("spelling", list(SPELLINGS))
def test_no_password_shows_in_descriptions_or_errors(spelling: str) -> None:
    for password in PASSWORDS:
        text = sources_yaml(url_for(spelling, password))
        try:
            [source] = load_sources_text(text, "s.yaml", env={"CMS_DB_PASSWORD": password})
        except SourceConfigError as exc:
            # Only a raw '@' is ambiguous; the refusal says how to write it, never what it was.
            assert spelling == "raw" and "@" in password, (password, str(exc))
            assert "percent-encode" in str(exc) and not leaks(str(exc), password), password
            continue
        with pytest.raises(SourceError) as failed:
            list(source.documents())
        shown = "\n".join([source.describe(), repr(source), str(failed.value)])
        assert "127.0.0.1" in shown and "reader" in shown
        assert not leaks(shown, password), (spelling, password, shown)
        if spelling in ("environment", "percent-encoded"):
            # The password reached the driver whole: the user and host are the real ones.
            assert source.url.password == password and source.url.host == "127.0.0.1"


def test_scan_output_dagster_logs_and_catalog_hold_no_password(
        settings: Settings, s3_client: Any, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    password = "Xk9@Qz7#Lm2p"
    sources = tmp_path / "sources.yaml"
    for name, spelling in (("cms", "environment"), ("cms-q", "query")):
        entry = yaml.safe_load(sources_yaml(url_for(spelling, password)))["sources"][0]
        entry["name"] = name
        existing = yaml.safe_load(sources.read_text())["sources"] if sources.exists() else []
        sources.write_text(yaml.safe_dump({"sources": [*existing, entry]}))
    env = {**env_for(settings), "MEDIA_PIPELINE_SOURCES": str(sources),
           "CMS_DB_PASSWORD": password, "COLUMNS": "400"}
    outputs = []
    with caplog.at_level(logging.DEBUG):
        for args in (["scan"], ["scan", "--json"]):
            result = CliRunner().invoke(cli, args, env=env)
            assert result.exit_code == 1 and "127.0.0.1" in result.output
            outputs.append(result.output)
        assert json.loads(outputs[1].split("\nerror:")[0])[0]["ok"] is False

        for key, value in env.items():
            monkeypatch.setenv(key, value)
        run = dg.materialize([content_sources, build_source_asset("cms")],
                             resources=dagster_resources(settings),
                             instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)
        events = "\n".join(repr(e) for e in run.all_events)
        assert "reader:***@127.0.0.1:1/cms" in events  # the described metadata
        assert "password=***" in events
    stored = catalog_text(settings)
    assert "Connection refused" in stored or "connection" in stored.lower()
    for where, text in (("scan output", "\n".join(outputs)), ("dagster", events),
                        ("logs", caplog.text), ("catalog", stored)):
        assert not leaks(text, password), (where, leaks(text, password))
