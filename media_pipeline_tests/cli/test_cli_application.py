"""The application commands (upload, presign-upload, url, visibility, tags, collections,
namespaces, members) through click's CliRunner, against moto and a real catalog."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result

from media_pipeline.cli import main as cli
from media_pipeline.settings import Settings
from media_pipeline_tests.app_fixtures import (
    SCRIPT_SVG,
    audit_rows,
    bucket_keys,
    pdf_bytes,
    png_bytes,
)
from media_pipeline_tests.fixtures_s3 import env_for


@pytest.fixture
def invoke(settings: Settings, s3_client: Any) -> Any:
    env = {**env_for(settings), "MEDIA_PIPELINE_ADMINS": "ops"}
    runner = CliRunner()

    def run(*args: str) -> Result:
        return runner.invoke(cli, list(args), env=env)

    return run


def ok(result: Result) -> Result:
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture
def team(invoke: Any) -> Any:
    ok(invoke("namespaces", "create", "team", "--user", "alice"))
    ok(invoke("members", "add", "team", "ed", "editor", "--user", "alice"))
    ok(invoke("members", "add", "team", "vic", "viewer", "--user", "alice"))
    return invoke


def test_upload_a_folder_reports_each_file_and_fails_if_any_is_refused(
    team: Any, settings: Settings, s3_client: Any, tmp_path: Path
) -> None:
    folder = tmp_path / "batch"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.png").write_bytes(png_bytes(seed=1))
    (folder / "sub" / "b.pdf").write_bytes(pdf_bytes())
    (folder / "evil.svg").write_bytes(SCRIPT_SVG)
    (folder / "copy.png").write_bytes(png_bytes(seed=1))
    (folder / ".hidden.png").write_bytes(png_bytes(seed=2))

    result = team("upload", str(folder), "--namespace", "team", "--user", "ed", "--json")
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert "error: 1 of 4 files refused or failed" in lines[-1]
    rows = json.loads("\n".join(lines[:-1]))
    by_name = {Path(r["path"]).name: r for r in rows}
    assert set(by_name) == {"a.png", "b.pdf", "evil.svg", "copy.png"}
    assert by_name["evil.svg"] == {"path": str(folder / "evil.svg"), "result": "refused",
                                   "reason": "SVG contains <script>"}
    assert by_name["a.png"]["result"] == "stored" and by_name["b.pdf"]["result"] == "stored"
    # a.png and copy.png have the same content: whichever came second was deduplicated.
    assert {by_name["a.png"]["media_id"]} == {by_name["copy.png"]["media_id"]}
    assert by_name["copy.png"]["result"] in {"stored", "deduplicated"}
    assert by_name["b.pdf"]["content_type"] == "application/pdf"
    assert len(bucket_keys(s3_client, settings.bucket)) == 2


def test_upload_text_output_and_all_good_exit_zero(team: Any, tmp_path: Path) -> None:
    path = tmp_path / "logo.png"
    path.write_bytes(png_bytes(seed=5))
    result = ok(team("upload", str(path), "-n", "team", "-u", "ed", "--visibility", "public"))
    assert "stored" in result.output and "logo.png" in result.output
    assert "public" in result.output


def test_upload_refusals_and_missing_files(team: Any, tmp_path: Path) -> None:
    denied = team("upload", str(tmp_path), "-n", "team", "-u", "vic")
    assert denied.exit_code == 1 and "needs editor" in denied.output
    missing = team("upload", str(tmp_path / "nope.png"), "-n", "team", "-u", "ed")
    assert missing.exit_code == 1 and "no such file or folder" in missing.output


def test_url_visibility_and_presign(team: Any, settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "p.png"
    path.write_bytes(png_bytes(seed=7))
    rows = json.loads(ok(team("upload", str(path), "-n", "team", "-u", "ed", "--json")).output)
    media_id = rows[0]["media_id"]

    # To whoever may not see it, the private file does not exist: the same line as an unknown id.
    unknown = str(uuid.uuid4())
    for who in ((), ("--user", "vic"), ("--user", "stranger")):
        hidden, missing = team("url", media_id, *who), team("url", unknown, *who)
        assert hidden.exit_code == missing.exit_code == 1
        assert hidden.output.replace(media_id, unknown) == missing.output
        assert "no media file" in hidden.output and "team" not in hidden.output
    signed = ok(team("url", media_id, "--user", "ed", "--expires", "60")).output.strip()
    assert httpx.get(signed, timeout=10).status_code == 200
    too_long = team("url", media_id, "--user", "ed", "--expires", "9999999")
    assert too_long.exit_code == 1 and "longer than the allowed" in too_long.output

    ok(team("visibility", media_id, "public", "--user", "ed"))
    public = ok(team("url", media_id)).output.strip()
    assert "X-Amz-Signature" not in public
    assert httpx.get(public, timeout=10).status_code == 200
    assert team("url", "00000000-0000-0000-0000-000000000000", "-u", "ed").exit_code == 1

    presigned = json.loads(ok(team(
        "presign-upload", "--namespace", "team", "--filename", "new.png", "--content-type",
        "image/png", "--size", "100", "--user", "ed", "--json")).output)
    assert presigned["method"] == "POST" and presigned["key"].startswith("team/")
    assert set(presigned["fields"]) >= {"key", "policy", "x-amz-signature", "Content-Type"}
    put = json.loads(ok(team(
        "presign-upload", "--namespace", "team", "--filename", "new.png", "--content-type",
        "image/png", "--size", "100", "--user", "ed", "--method", "put", "--json")).output)
    assert put["method"] == "PUT" and put["headers"]["Content-Length"] == "100"
    refused = team("presign-upload", "--namespace", "team", "--filename", "x.exe",
                   "--content-type", "application/x-msdownload", "--size", "5", "--user", "ed")
    assert refused.exit_code == 1 and "not allowed" in refused.output


def test_tags_commands(team: Any, tmp_path: Path, settings: Settings) -> None:
    path = tmp_path / "t.png"
    path.write_bytes(png_bytes(seed=8))
    rows = json.loads(ok(team("upload", str(path), "-n", "team", "-u", "ed", "--json",
                              "--visibility", "internal")).output)
    media_id = rows[0]["media_id"]
    ok(team("tags", "add", media_id, "sunset", "--user", "ed"))
    ok(team("tags", "add", media_id, "beach", "--user", "ed"))
    listed = json.loads(ok(team("tags", "list", media_id, "--user", "vic", "--json")).output)
    assert [(t["tag"], t["source"]) for t in listed] == [("beach", "manual"),
                                                        ("sunset", "manual")]
    ok(team("tags", "remove", media_id, "sunset", "--user", "ed"))
    table = ok(team("tags", "list", media_id, "--user", "vic")).output
    assert "beach" in table and "sunset" not in table
    denied = team("tags", "add", media_id, "x", "--user", "vic")
    assert denied.exit_code == 1 and "needs editor" in denied.output
    assert [a["action"] for a in audit_rows(settings)][-3:] == ["tag.add", "tag.add",
                                                                 "tag.remove"]


def test_collections_commands(team: Any, tmp_path: Path) -> None:
    ids = []
    for i in range(3):
        path = tmp_path / f"{i}.png"
        path.write_bytes(png_bytes(seed=20 + i))
        rows = json.loads(ok(team("upload", str(path), "-n", "team", "-u", "ed", "--json",
                                  "--visibility", "public")).output)
        ids.append(rows[0]["media_id"])
    cid = ok(team("collections", "create", "team", "Best of", "--user", "ed",
                  "--visibility", "public")).output.strip()
    for media_id in ids:
        ok(team("collections", "add", cid, media_id, "--user", "ed"))
    ok(team("collections", "remove", cid, ids[1], "--user", "ed"))
    ok(team("collections", "reorder", cid, ids[2], ids[0], "--user", "ed"))
    shown = json.loads(ok(team("collections", "show", cid, "--json")).output)
    assert [i["media"]["media_id"] for i in shown["items"]] == [ids[2], ids[0]]
    assert [i["position"] for i in shown["items"]] == [0, 1]
    listed = json.loads(ok(team("collections", "list", "team", "--user", "vic", "--json")).output)
    assert [(c["name"], c["items"]) for c in listed] == [("Best of", 2)]
    dup = team("collections", "add", cid, ids[0], "--user", "ed")
    assert dup.exit_code == 1 and "already in the collection" in dup.output
    text = ok(team("collections", "show", cid, "--user", "vic")).output
    assert "Best of" in text and "2 items" in text


def test_namespace_and_member_commands(team: Any) -> None:
    listed = json.loads(ok(team("members", "list", "team", "--user", "vic", "--json")).output)
    assert [(m["user_id"], m["role"]) for m in listed] == [
        ("alice", "admin"), ("ed", "editor"), ("vic", "viewer")]
    denied = team("members", "add", "team", "zed", "viewer", "--user", "ed")
    assert denied.exit_code == 1 and "needs admin" in denied.output
    ok(team("members", "remove", "team", "vic", "--user", "alice"))
    assert "vic" not in ok(team("members", "list", "team", "--user", "ed")).output
    last = team("members", "remove", "team", "alice", "--user", "alice")
    assert last.exit_code == 1 and "last admin" in last.output
    namespaces = json.loads(ok(team("namespaces", "list", "--user", "ed", "--json")).output)
    assert namespaces == [{"namespace": "team", "default_visibility": "private",
                           "role": "editor"}]
    assert "team" in ok(team("namespaces", "list", "--user", "ops")).output
    bad = team("namespaces", "create", "Bad Name!", "--user", "ed")
    assert bad.exit_code == 1 and "not allowed" in bad.output
    again = team("namespaces", "create", "team", "--user", "ed")
    assert again.exit_code == 1 and "already exists" in again.output


def test_upload_reports_a_file_that_fails_in_storage_and_goes_on(
    settings: Settings, s3_client: Any, tmp_path: Path
) -> None:
    from media_pipeline_tests.app_fixtures import NoAclProxy

    proxy = NoAclProxy(settings.endpoint_url or "")
    try:
        s3_client.put_bucket_ownership_controls(
            Bucket=settings.bucket,
            OwnershipControls={"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]})
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("AWS_", "MEDIA_PIPELINE"))}
        env.update({"AWS_S3_ENDPOINT_URL": proxy.url, "AWS_ACCESS_KEY_ID": "testing",
                    "AWS_SECRET_ACCESS_KEY": "testing",
                    "AWS_STORAGE_BUCKET_NAME": settings.bucket,
                    "MEDIA_PIPELINE_HOME": str(settings.home)})
        runner = CliRunner()
        ok(runner.invoke(cli, ["namespaces", "create", "team", "-u", "alice"], env=env))
        for i in range(2):
            (tmp_path / f"{i}.png").write_bytes(png_bytes(seed=90 + i))
        result = runner.invoke(cli, ["upload", str(tmp_path / "0.png"), str(tmp_path / "1.png"),
                                     "-n", "team", "-u", "alice", "--visibility", "public"],
                               env=env)
        assert result.exit_code == 1
        assert result.output.count("failed ") == 2 and "ACL" in result.output
        assert "2 of 2 files refused or failed" in result.output
        assert bucket_keys(s3_client, settings.bucket) == []
    finally:
        proxy.close()


def test_the_commands_work_with_python_dash_m(settings: Settings, s3_client: Any) -> None:
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MEDIA_PIPELINE"))}
    env.update({"AWS_S3_ENDPOINT_URL": settings.endpoint_url or "",
                "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_STORAGE_BUCKET_NAME": settings.bucket,
                "MEDIA_PIPELINE_HOME": str(settings.home)})
    done = subprocess.run(
        [sys.executable, "-m", "media_pipeline.cli", "namespaces", "create", "team", "--user",
         "alice", "--json"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["namespace"] == "team"
