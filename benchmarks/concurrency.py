"""The catalog under concurrent use: application processes, a nightly reconciliation and an
analyst, all at once, in separate processes; then every acknowledged write is checked.

- ``apps`` processes act through ``MediaLibrary`` as their own editor, each on its own files (so
  no two of them race on one file's meaning): add and remove references, tag and untag,
  soft-delete and restore, upload, and read (references, URLs). Each remembers what every
  acknowledged call should have left behind.
- one pipeline process runs the nightly reconciliation in a loop: new objects put straight into
  the bucket, then the inventory stage (live listing), the fingerprint stage and the duplicates
  stage, as the nightly job does.
- one analyst process runs ``media-pipeline query``'s function (``analyst_query.run_query``) in a
  loop.

Afterwards, through ``MediaLibrary``: every acknowledged reference, tag and deletion state is
there (a "lost write" otherwise), every upload is active, every object of a finished
reconciliation is catalogued. A call that raised is an error; its file is left out of the check
from then on (what it left behind is unknown), so errors and lost writes are counted apart.

Only settings differ from one catalog to another: the processes get the ``Settings`` given.
"""

from __future__ import annotations

import io
import json
import multiprocessing
import random
import statistics
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from media_pipeline.analyst_query import run_query
from media_pipeline.library import MediaLibrary
from media_pipeline.records import media_id_for
from media_pipeline.settings import Settings
from media_pipeline.stages import (
    commit_inventory,
    fingerprint_pending,
    rebuild_duplicates,
    take_inventory,
)
from media_pipeline.storage import ensure_bucket, make_client

NAMESPACE = "app"
CONTENT_TYPE = "page"
ANALYST_SQL = ("SELECT count(*) AS files, sum(reference_count) AS references, "
               "count(*) FILTER (WHERE is_deleted) AS deleted FROM media_files")


def app_user(k: int) -> str:
    return f"app-{k}@bench"


@dataclass
class ConcurrencyReport:
    seconds: float
    actions: dict[str, int] = field(default_factory=dict)
    latencies: dict[str, list[float]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    pipeline_runs: int = 0
    pipeline_seconds: list[float] = field(default_factory=list)
    pipeline_errors: list[str] = field(default_factory=list)
    analyst_seconds: list[float] = field(default_factory=list)
    analyst_errors: list[str] = field(default_factory=list)
    checked_writes: int = 0
    lost_writes: list[str] = field(default_factory=list)

    @property
    def error_count(self) -> int:
        return len(self.errors) + len(self.pipeline_errors) + len(self.analyst_errors)

    def lines(self) -> list[str]:
        out = [f"{sum(self.actions.values()):,} application calls in {self.seconds:.0f} s: "
               + ", ".join(f"{k} {v}" for k, v in sorted(self.actions.items()))]
        for name, values in sorted(self.latencies.items()):
            out.append(f"  {name:18} p50 {percentile(values, 50) * 1000:8.1f} ms   "
                       f"p99 {percentile(values, 99) * 1000:8.1f} ms   "
                       f"max {max(values) * 1000:8.1f} ms   n={len(values)}")
        runs = self.pipeline_seconds
        out.append(f"nightly reconciliation: {self.pipeline_runs} runs finished"
                   + (f", p50 {statistics.median(runs):.1f} s" if runs else ""))
        a = self.analyst_seconds
        out.append(f"analyst: {len(a)} queries"
                   + (f", p50 {percentile(a, 50) * 1000:.0f} ms, p99 "
                      f"{percentile(a, 99) * 1000:.0f} ms" if a else ""))
        out.append(f"errors: {len(self.errors)} application, {len(self.pipeline_errors)} "
                   f"pipeline, {len(self.analyst_errors)} analyst")
        for e in (self.errors + self.pipeline_errors + self.analyst_errors)[:8]:
            out.append(f"  {e}")
        out.append(f"lost writes: {len(self.lost_writes)} of {self.checked_writes:,} checked")
        for lost in self.lost_writes[:8]:
            out.append(f"  {lost}")
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "seconds": self.seconds, "actions": self.actions,
            "latency_ms": {k: {"p50": percentile(v, 50) * 1000, "p99": percentile(v, 99) * 1000,
                               "max": max(v) * 1000, "n": len(v)}
                           for k, v in self.latencies.items()},
            "errors": self.errors, "pipeline_runs": self.pipeline_runs,
            "pipeline_errors": self.pipeline_errors,
            "analyst_queries": len(self.analyst_seconds),
            "analyst_p50_ms": (percentile(self.analyst_seconds, 50) * 1000
                               if self.analyst_seconds else None),
            "analyst_errors": self.analyst_errors,
            "checked_writes": self.checked_writes, "lost_writes": self.lost_writes,
        }


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * p // 100))
    return ordered[int(rank) - 1]


def _error(where: str, exc: BaseException) -> str:
    return f"{where}: {type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"


def _content(k: int, j: int) -> bytes:
    return f"app {k} file {j} {time.time_ns()} {random.random()}\n".encode()


# -- the processes ---------------------------------------------------------------------------


class Start:
    """Every process waits here once set up (imports take seconds on a busy machine); the clock
    starts when all are ready, so each gets the whole time."""

    def __init__(self, ctx: Any, parties: int) -> None:
        self.ready = ctx.Barrier(parties + 1)
        self.go = ctx.Event()
        self.deadline = ctx.Value("d", 0.0)

    def wait(self) -> float:
        """In a process: ready, then the deadline (epoch seconds) once everyone is."""
        self.ready.wait(timeout=600)
        self.go.wait(timeout=600)
        return float(self.deadline.value)

    def begin(self, seconds: float) -> None:
        """In the parent: wait for every process, then start the clock."""
        self.ready.wait(timeout=600)
        self.deadline.value = time.time() + seconds
        self.go.set()


def app_process(k: int, settings: Settings, files: list[str], start: Start, out: str,
                min_actions: int = 0) -> None:
    """One application: random actions on its own files until the deadline, and at least
    ``min_actions`` of them (a test's scenario must happen however slow the machine is)."""
    rng = random.Random(k)
    user = app_user(k)
    library = MediaLibrary(settings)
    deadline = start.wait()
    state: dict[str, dict[str, Any]] = {
        m: {"refs": [], "tags": [], "deleted": False} for m in files}
    retired: list[str] = []
    counts: dict[str, int] = {}
    latencies: dict[str, list[float]] = {}
    errors: list[str] = []
    uploads = 0
    serial = 0
    while state and (time.time() < deadline or serial < min_actions):
        media_id = rng.choice(sorted(state))
        s = state[media_id]
        if s["deleted"]:
            action = "restore"
        else:
            roll = rng.random()
            action = ("add_reference" if roll < 0.25 else
                      "remove_reference" if roll < 0.37 and s["refs"] else
                      "add_tag" if roll < 0.52 else
                      "remove_tag" if roll < 0.60 and s["tags"] else
                      "delete" if roll < 0.75 and not s["refs"] else
                      "upload" if roll < 0.80 else
                      "get_references" if roll < 0.90 else "url")
        serial += 1
        started = time.perf_counter()
        try:
            if action == "add_reference":
                content_id = f"{k}-{serial}"
                library.add_reference(media_id, CONTENT_TYPE, content_id, user)
                s["refs"].append(content_id)
            elif action == "remove_reference":
                content_id = s["refs"][rng.randrange(len(s["refs"]))]
                library.remove_reference(media_id, CONTENT_TYPE, content_id, user)
                s["refs"].remove(content_id)
            elif action == "add_tag":
                tag = f"tag-{rng.randrange(5)}"
                library.add_tag(media_id, tag, user)
                if tag not in s["tags"]:
                    s["tags"].append(tag)
            elif action == "remove_tag":
                tag = s["tags"][rng.randrange(len(s["tags"]))]
                library.remove_tag(media_id, tag, user)
                s["tags"].remove(tag)
            elif action == "delete":
                if not library.delete(media_id, user):
                    raise AssertionError(f"delete of unreferenced {media_id} refused")
                s["deleted"] = True
            elif action == "restore":
                library.restore(media_id, user)
                s["deleted"] = False
            elif action == "upload":
                uploads += 1
                media = library.upload(NAMESPACE, io.BytesIO(_content(k, 10_000 + uploads)),
                                       f"upload-{k}-{uploads}.txt", user)
                state[media.media_id] = {"refs": [], "tags": [], "deleted": False}
            elif action == "get_references":
                library.get_references(media_id, user)
            else:
                library.url(media_id, user)
        except Exception as exc:  # noqa: BLE001 - counted and reported, the file retired
            errors.append(_error(f"app {k} {action} {media_id}", exc))
            if action != "upload":
                retired.append(media_id)
                del state[media_id]
            continue
        latencies.setdefault(action, []).append(time.perf_counter() - started)
        counts[action] = counts.get(action, 0) + 1
    Path(out).write_text(json.dumps({"state": state, "retired": retired, "counts": counts,
                                     "latencies": latencies, "errors": errors}))


def pipeline_process(settings: Settings, start: Start, out: str) -> None:
    """The nightly reconciliation in a loop: new objects, inventory, fingerprints, duplicates."""
    client = make_client(settings)
    deadline = start.wait()
    finished: list[str] = []
    seconds: list[float] = []
    errors: list[str] = []
    run = 0
    while time.time() < deadline:
        run += 1
        keys = [f"nightly/run-{run}/object-{j}.txt" for j in range(5)]
        started = time.perf_counter()
        try:
            for key in keys:
                client.put_object(Bucket=settings.bucket, Key=key,
                                  Body=f"{key} {time.time_ns()}\n".encode(),
                                  ContentType="text/plain")
            take_inventory(settings, client)
            commit_inventory(settings, run_id=f"bench-{run}")
            fingerprint_pending(settings, client)
            rebuild_duplicates(settings)
        except Exception as exc:  # noqa: BLE001 - counted and reported
            errors.append(_error(f"pipeline run {run}", exc) + " | "
                          + traceback.format_exc().strip().splitlines()[-2].strip()[:120])
            continue
        seconds.append(time.perf_counter() - started)
        finished.extend(keys)
    Path(out).write_text(json.dumps({"finished": finished, "seconds": seconds,
                                     "errors": errors}))


def analyst_process(settings: Settings, start: Start, out: str) -> None:
    seconds: list[float] = []
    errors: list[str] = []
    deadline = start.wait()
    while time.time() < deadline:
        started = time.perf_counter()
        try:
            run_query(settings, ANALYST_SQL)
        except Exception as exc:  # noqa: BLE001 - counted and reported
            errors.append(_error("analyst query", exc))
            time.sleep(0.2)
            continue
        seconds.append(time.perf_counter() - started)
    Path(out).write_text(json.dumps({"seconds": seconds, "errors": errors}))


# -- set-up, run, check ------------------------------------------------------------------------


def prepare(settings: Settings, admin: str, apps: int, files_per_app: int) -> dict[int, list[str]]:
    """The namespace, one editor per application and its files (uploaded through the API)."""
    client = make_client(settings)
    ensure_bucket(client, settings.bucket, settings.region)
    library = MediaLibrary(settings, client)
    library.create_namespace(NAMESPACE, admin)
    files: dict[int, list[str]] = {}
    for k in range(apps):
        library.add_member(NAMESPACE, app_user(k), "editor", admin)
        files[k] = [library.upload(NAMESPACE, io.BytesIO(_content(k, j)), f"file-{k}-{j}.txt",
                                   app_user(k)).media_id for j in range(files_per_app)]
    return files


def run(settings: Settings, *, admin: str, seconds: float, apps: int = 4,
        files_per_app: int = 20, work: Path, pipeline: bool = True,
        analyst: bool = True, min_actions: int = 0) -> ConcurrencyReport:
    """Run the scenario on ``settings`` (an empty catalog, a reachable S3 with ``admin`` in
    ``settings.admins``) and check it afterwards. Each application makes at least
    ``min_actions`` calls, past ``seconds`` if it must."""
    work.mkdir(parents=True, exist_ok=True)
    files = prepare(settings, admin, apps, files_per_app)
    ctx = multiprocessing.get_context("spawn")
    start = Start(ctx, apps + pipeline + analyst)
    procs = [ctx.Process(target=app_process, name=f"app-{k}",
                         args=(k, settings, files[k], start, str(work / f"app-{k}.json"),
                               min_actions))
             for k in range(apps)]
    if pipeline:
        procs.append(ctx.Process(target=pipeline_process, name="pipeline",
                                 args=(settings, start, str(work / "pipeline.json"))))
    if analyst:
        procs.append(ctx.Process(target=analyst_process, name="analyst",
                                 args=(settings, start, str(work / "analyst.json"))))
    for p in procs:
        p.start()
    report = ConcurrencyReport(seconds=0.0)
    try:
        start.begin(seconds)
    except threading.BrokenBarrierError:
        report.errors.append("the processes did not all start within 600 s")
    started = time.time()
    for p in procs:
        p.join(timeout=seconds + 900)
    report.seconds = time.time() - started
    for p in procs:
        if p.is_alive():
            p.kill()
            p.join()
        if p.exitcode != 0:
            report.errors.append(f"process {p.name} ended with exit code {p.exitcode}")
    _collect(report, settings, admin, apps, work, pipeline, analyst)
    return report


def _read(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.exists() else None


def _collect(report: ConcurrencyReport, settings: Settings, admin: str, apps: int, work: Path,
             pipeline: bool, analyst: bool) -> None:
    library = MediaLibrary(settings)
    for k in range(apps):
        out = _read(work / f"app-{k}.json")
        if out is None:
            report.errors.append(f"app {k} wrote no outcome")
            continue
        for name, n in out["counts"].items():
            report.actions[name] = report.actions.get(name, 0) + n
        for name, values in out["latencies"].items():
            report.latencies.setdefault(name, []).extend(values)
        report.errors.extend(out["errors"])
        for media_id, want in out["state"].items():
            _check_file(report, library, app_user(k), media_id, want)
    if pipeline:
        out = _read(work / "pipeline.json")
        if out is None:
            report.pipeline_errors.append("the pipeline process wrote no outcome")
        else:
            report.pipeline_runs = len(out["seconds"])
            report.pipeline_seconds = out["seconds"]
            report.pipeline_errors.extend(out["errors"])
            for key in out["finished"]:
                report.checked_writes += 1
                try:
                    media = library.get(media_id_for(settings.bucket, key), admin)
                except Exception as exc:  # noqa: BLE001 - a lost object
                    report.lost_writes.append(_error(f"nightly object {key}", exc))
                    continue
                if media.status != "active":
                    report.lost_writes.append(f"nightly object {key} is {media.status}")
    if analyst:
        out = _read(work / "analyst.json")
        if out is None:
            report.analyst_errors.append("the analyst process wrote no outcome")
        else:
            report.analyst_seconds = out["seconds"]
            report.analyst_errors.extend(out["errors"])


def _check_file(report: ConcurrencyReport, library: MediaLibrary, user: str, media_id: str,
                want: dict[str, Any]) -> None:
    report.checked_writes += 1 + len(want["refs"]) + len(want["tags"])
    try:
        media = library.get(media_id, user)
        refs = library.get_references(media_id, user).get(CONTENT_TYPE, [])
        tags = {t["tag"] for t in library.tags(media_id, user) if t.get("source") != "ai"}
    except Exception as exc:  # noqa: BLE001 - the file itself is lost
        report.lost_writes.append(_error(f"{media_id}", exc))
        return
    status = "deleted" if want["deleted"] else "active"
    if media.is_deleted != want["deleted"] or media.status != status:
        report.lost_writes.append(f"{media_id}: is_deleted {media.is_deleted}, status "
                                  f"{media.status}; expected {want['deleted']}, {status}")
    if set(refs) != set(want["refs"]):
        report.lost_writes.append(f"{media_id}: references {sorted(refs)}, expected "
                                  f"{sorted(want['refs'])}")
    if tags != set(want["tags"]):
        report.lost_writes.append(f"{media_id}: tags {sorted(tags)}, expected "
                                  f"{sorted(want['tags'])}")
