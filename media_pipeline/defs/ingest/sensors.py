"""The new-object sensor and the `ingest_new_objects` job it triggers.

Files arrive between nightly runs (browser uploads through presigned POSTs, other writers). The
sensor notices them and asks for a run of ``ingest_new_objects`` with just their keys, which
catalogs and fingerprints them (validation quarantines what fails). Two ways to notice:

* **SQS** (``MEDIA_PIPELINE_SQS_QUEUE_URL`` set): the bucket sends S3 event notifications to the
  queue. Each tick receives up to ``SQS_MESSAGES_PER_TICK`` messages and asks for one run with
  their keys; the run key is made of the message ids, so messages delivered again (SQS is
  at-least-once) give the same run key and Dagster does not launch them twice. Messages are
  deleted once the run request is made, at the end of the tick. A sensor cannot know whether
  the run later succeeds; holding messages until then would need receipt handles that outlive
  their visibility timeout. So a run that fails, or a daemon that dies between the tick and
  the launch, loses those events: the nightly reconciliation, which lists the whole bucket, is
  the safety net (and re-executing a failed run works, its keys are in its config). Malformed
  messages are logged and deleted so they cannot loop.
* **Listing** (no queue): each tick lists the bucket and asks for runs for objects it has not
  seen. The cursor holds the newest LastModified seen (S3's clock, not ours) and hashes of the
  (key, ETag) of every object modified within ``LISTING_LOOKBACK`` before it. The look-back
  catches objects whose LastModified is older than objects already seen, which is common: S3
  stamps an upload when it starts (a slow browser upload, a multipart upload), not when it
  becomes visible; it also covers equal timestamps and overwrites (new ETag). Objects older
  than the look-back that appear late, and deletions, are left to the nightly reconciliation.
  The first tick (no cursor) records what is there and requests nothing: the bucket's
  existing objects are the nightly run's work, and a sensor switched on for a bucket of
  millions must not put them all in run configs. Listing costs one LIST request per 1,000
  objects per tick: for large buckets configure SQS.

Default status: RUNNING when a queue is configured (someone set the queue up for this, and
reading it is all the sensor does besides cataloging), STOPPED in listing mode (a whole-bucket
listing every 30 seconds has a price on a large bucket: switch it on in the UI).
"""

import hashlib
import json
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg

from media_pipeline import stages
from media_pipeline.defs.resources import CATALOG_POOL, MediaPipelineResource
from media_pipeline.events import delete_messages, make_sqs_client, poll_sqs
from media_pipeline.settings import Settings, SettingsError
from media_pipeline.storage import S3Object, list_objects

MINIMUM_INTERVAL_SECONDS = 30
MAX_KEYS_PER_RUN = 500
# S3 sends one record per message: a tick's messages fill about one run.
SQS_MESSAGES_PER_TICK = MAX_KEYS_PER_RUN
# Longer than a tick: messages a crashed tick did not delete come back after this, not at once.
SQS_VISIBILITY_TIMEOUT = 300
LISTING_LOOKBACK = timedelta(minutes=15)
PRUNE_EVERY = 50_000  # listed objects kept before dropping those older than the window
CURSOR_VERSION = 1
TRIGGER_TAG = "media_pipeline/trigger"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class IngestConfig(dg.Config):
    keys: list[str]


@dg.op(pool=CATALOG_POOL, out=dg.Out(dg.Nothing))
def ingest_keys_op(
    context: dg.OpExecutionContext,
    config: IngestConfig,
    media: MediaPipelineResource,
) -> Iterator[dg.Output[None]]:
    """HEAD the keys, catalog what exists (what is gone becomes missing), fingerprint and
    validate the new or changed ones. Fails, after applying everything else, if S3 would not
    describe or read some keys, so the run shows red and can be re-executed."""
    settings = media.settings()
    result = stages.ingest_keys(
        settings, config.keys, client=media.s3_client(), run_id=context.run.run_id)
    metadata: dict[str, Any] = {
        "keys": result.keys, "new": result.new, "changed": result.changed,
        "reappeared": result.reappeared, "unchanged": result.unchanged, "gone": result.gone,
        "missing": result.missing, "fingerprinted": result.fingerprinted,
        "active": result.active, "quarantined": result.quarantined,
        "public_closed": result.public_closed,
        "fingerprint_errors": result.fingerprint_errors, "head_errors": len(result.head_errors),
        "bytes_read": result.bytes_read, "s3_retries": result.s3_retries,
    }
    context.log.info(
        f"{result.keys} keys: {result.new} new, {result.changed} changed, {result.missing} "
        f"missing, {result.quarantined} quarantined")
    if not result.ok:
        shown = dict(list(result.head_errors.items())[:20])
        raise dg.Failure(
            description=(
                f"{len(result.head_errors)} keys could not be read from S3 and "
                f"{result.fingerprint_errors} could not be fingerprinted; the rest was applied. "
                "They stay as they were (pending ones are retried by the next fingerprint pass)."),
            metadata={**metadata, "head_error_examples": dg.MetadataValue.json(shown)},
        )
    yield dg.Output(None, metadata=metadata)


@dg.job(
    name="ingest_new_objects",
    description="Catalog and fingerprint the objects named in the run config (keys), e.g. "
                "from the new_s3_objects sensor.",
)
def ingest_new_objects() -> None:
    ingest_keys_op()


def run_config_for(keys: Sequence[str]) -> dict[str, Any]:
    return {"ops": {"ingest_keys_op": {"config": {"keys": list(keys)}}}}


def _digest(parts: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(parts).encode("utf-8", "surrogatepass")).hexdigest()[:32]


# -- SQS ------------------------------------------------------------------------------------


def _from_sqs(context: dg.SensorEvaluationContext, settings: Settings
              ) -> Iterator[dg.RunRequest | dg.SkipReason]:
    queue_url = settings.sqs_queue_url
    assert queue_url is not None
    client = make_sqs_client(settings)
    polled = poll_sqs(client, queue_url, SQS_MESSAGES_PER_TICK, bucket=settings.bucket,
                      visibility_timeout=SQS_VISIBILITY_TIMEOUT, log=context.log)
    if polled.keys:
        yield dg.RunRequest(
            run_key=f"sqs-{_digest(sorted(polled.message_ids))}",
            run_config=run_config_for(polled.keys),
            tags={TRIGGER_TAG: "sqs", "media_pipeline/keys": str(len(polled.keys))},
        )
    else:
        yield dg.SkipReason(
            f"no new S3 events ({polled.malformed} malformed and {polled.without_keys} other "
            "messages skipped)")
    # After the request: see the module docstring for why this order and what backs it up.
    if polled.receipt_handles:
        try:
            delete_messages(client, queue_url, polled.receipt_handles, log=context.log)
        except Exception as exc:  # they come back after the visibility timeout: harmless
            context.log.warning(f"could not delete SQS messages: {exc}")


# -- listing --------------------------------------------------------------------------------


def _seen_hash(obj: S3Object) -> str:
    return hashlib.sha1(f"{obj.key}\0{obj.etag}".encode("utf-8", "surrogatepass"),
                        usedforsecurity=False).hexdigest()[:16]


def _read_cursor(raw: str | None) -> tuple[datetime | None, set[str]] | None:
    """(watermark, seen hashes), or None for no cursor or one we cannot read (start over)."""
    if not raw:
        return None
    try:
        doc = json.loads(raw)
        if doc.get("v") != CURSOR_VERSION:
            return None
        mark = datetime.fromisoformat(doc["watermark"]) if doc.get("watermark") else None
        return mark, set(doc.get("seen", []))
    except (ValueError, TypeError, KeyError, AttributeError):
        return None


def _write_cursor(watermark: datetime | None, objects: Sequence[S3Object]) -> str:
    start = watermark - LISTING_LOOKBACK if watermark is not None else None
    seen = sorted({_seen_hash(o) for o in objects
                   if start is None or (o.last_modified is not None and o.last_modified >= start)})
    return json.dumps({"v": CURSOR_VERSION,
                       "watermark": watermark.isoformat() if watermark else None,
                       "seen": seen})


def listing_requests(objects: Iterable[S3Object], cursor: str | None
                     ) -> tuple[list[dg.RunRequest], str, str | None]:
    """Run requests for the listed objects the cursor has not seen, the next cursor, and a
    note when the cursor was (re)started instead.

    ``objects`` is streamed: only objects recent enough to matter are kept, so a tick over a
    large bucket holds the look-back window in memory, not the listing.
    """
    state = _read_cursor(cursor)
    old_mark, seen = state if state is not None else (None, set())
    old_start = old_mark - LISTING_LOOKBACK if old_mark is not None else None
    mark = old_mark
    kept: list[S3Object] = []
    prune_at = PRUNE_EVERY
    listed = 0
    for obj in objects:
        listed += 1
        stamp = obj.last_modified
        if stamp is None:
            continue
        if mark is None or stamp > mark:
            mark = stamp
        if state is None:
            # No cursor: only the newest window goes into the first cursor.
            if stamp >= mark - LISTING_LOOKBACK:
                kept.append(obj)
                if len(kept) >= prune_at:
                    floor = mark - LISTING_LOOKBACK
                    kept = [o for o in kept if o.last_modified and o.last_modified >= floor]
                    prune_at = max(PRUNE_EVERY, 2 * len(kept))
        elif old_start is None or stamp >= old_start:
            kept.append(obj)
    if state is None:
        note = (f"cursor started at {mark.isoformat() if mark else 'an empty bucket'}; the "
                f"{listed} objects already there are left to the nightly reconciliation")
        return [], _write_cursor(mark, kept), note
    fresh = sorted((o for o in kept if _seen_hash(o) not in seen),
                   key=lambda o: (o.last_modified or EPOCH, o.key))
    requests = []
    for i in range(0, len(fresh), MAX_KEYS_PER_RUN):
        chunk = fresh[i:i + MAX_KEYS_PER_RUN]
        versions = sorted(o.key + "\0" + o.etag for o in chunk)
        requests.append(dg.RunRequest(
            run_key=f"listing-{_digest(versions)}",
            run_config=run_config_for([o.key for o in chunk]),
            tags={TRIGGER_TAG: "listing", "media_pipeline/keys": str(len(chunk))},
        ))
    return requests, _write_cursor(mark, kept), None


def _from_listing(context: dg.SensorEvaluationContext, settings: Settings, client: Any
                  ) -> dg.SensorResult:
    requests, cursor, note = listing_requests(
        list_objects(client, settings.bucket), context.cursor)
    if note:
        context.log.info(note)
    return dg.SensorResult(
        run_requests=requests,
        cursor=cursor,
        skip_reason=None if requests else (note or "no new objects"),
    )


# -- the sensor -----------------------------------------------------------------------------


def _sqs_configured(settings: Settings | None = None) -> bool:
    """Whether ``settings`` (by default this process's environment, read now) name a queue."""
    try:
        return (settings or Settings.from_env()).sqs_queue_url is not None
    except SettingsError:
        return False


def _evaluate(context: dg.SensorEvaluationContext, media: MediaPipelineResource) -> Any:
    settings = media.settings()
    if settings.sqs_queue_url:
        return _from_sqs(context, settings)
    return _from_listing(context, settings, media.s3_client())


def new_s3_objects_sensor(default_status: dg.DefaultSensorStatus) -> dg.SensorDefinition:
    """The sensor, starting in ``default_status`` (the definitions pass RUNNING when a queue is
    configured, see the module docstring)."""

    @dg.sensor(
        name="new_s3_objects",
        job=ingest_new_objects,
        minimum_interval_seconds=MINIMUM_INTERVAL_SECONDS,
        default_status=default_status,
        description="New S3 objects → ingest_new_objects: from SQS event notifications when "
                    "MEDIA_PIPELINE_SQS_QUEUE_URL is set, else by listing the bucket with a "
                    "cursor.",
    )
    def new_s3_objects(context: dg.SensorEvaluationContext, media: MediaPipelineResource
                       ) -> Any:
        return _evaluate(context, media)

    return new_s3_objects


# For direct use (tests, one-off evaluations); the definitions build theirs from the settings.
new_s3_objects = new_s3_objects_sensor(dg.DefaultSensorStatus.STOPPED)


def build_defs(settings: Settings) -> dg.Definitions:
    """The sensor (RUNNING when ``settings`` name a queue) and the job it triggers."""
    status = (dg.DefaultSensorStatus.RUNNING if _sqs_configured(settings)
              else dg.DefaultSensorStatus.STOPPED)
    return dg.Definitions(sensors=[new_s3_objects_sensor(status)], jobs=[ingest_new_objects])
