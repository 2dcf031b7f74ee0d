"""The new_s3_objects sensor (SQS and listing modes), S3 event parsing and the
ingest_new_objects job, against the moto server (S3 and SQS over HTTP) and a real catalog."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import dagster as dg
import pytest

from media_pipeline.catalog import Catalog
from media_pipeline.defs.ingest import sensors
from media_pipeline.events import MalformedMessage, make_sqs_client, parse_message
from media_pipeline.settings import Settings
from media_pipeline.storage import S3Object
from media_pipeline_tests.fixtures_s3 import dagster_resources, upload
from media_pipeline_tests.http_server import Response, serve
from media_pipeline_tests.stages.test_ingest_keys import png

UNUSUAL_KEY = "u/Grüße aus Köln+x 100%.png"


def tick(settings: Settings, cursor: str | None = None) -> Any:
    """One sensor evaluation, as the daemon would run it."""
    with dg.build_sensor_context(cursor=cursor, resources=dagster_resources(settings)) as context:
        return sensors.new_s3_objects.evaluate_tick(context)


def keys_of(request: dg.RunRequest) -> list[str]:
    assert request.run_config is not None
    return list(request.run_config["ops"]["ingest_keys_op"]["config"]["keys"])


# -- parsing S3 event messages ------------------------------------------------------------------


def record(key: str, event: str = "ObjectCreated:Put", bucket: str = "media") -> dict[str, Any]:
    return {"eventName": event, "s3": {"bucket": {"name": bucket}, "object": {"key": key}}}


def test_keys_are_url_decoded_like_s3_encodes_them() -> None:
    body = json.dumps({"Records": [
        record("u%2FGr%C3%BC%C3%9Fe+aus+K%C3%B6ln%2Bx+100%25.png"),
        record("a/b.png", "ObjectRemoved:Delete"),
    ]})
    assert parse_message(body) == [UNUSUAL_KEY, "a/b.png"]


def test_test_events_other_buckets_and_other_event_types_give_no_keys() -> None:
    test_event = json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "media"})
    assert parse_message(test_event) == []
    body = json.dumps({"Records": [
        record("mine.png"), record("theirs.png", bucket="other"),
        record("tagged.png", "ObjectTagging:Put"),
    ]})
    assert parse_message(body, bucket="media") == ["mine.png"]


def test_an_sns_envelope_is_unwrapped() -> None:
    inner = json.dumps({"Records": [record("via+sns.png")]})
    body = json.dumps({"Type": "Notification", "Message": inner, "TopicArn": "arn:x"})
    assert parse_message(body) == ["via sns.png"]


@pytest.mark.parametrize("body, reason", [
    ("not json", "not JSON"),
    ("[1, 2]", "a JSON list"),
    ('{"hello": "world"}', "no Records"),
    ('{"Records": [{"eventName": "ObjectCreated:Put"}]}', "record 0 lacks"),
    ('{"Records": [{"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "m"}, '
     '"object": {"key": ""}}}]}', "record 0 has no usable"),
])
def test_malformed_messages_say_why(body: str, reason: str) -> None:
    with pytest.raises(MalformedMessage, match=reason):
        parse_message(body)


def test_the_sqs_client_finds_the_endpoint_in_the_queue_url(settings: Settings) -> None:
    aws = make_sqs_client(settings, "https://sqs.eu-west-1.amazonaws.com/123456789012/q")
    assert aws.meta.region_name == "eu-west-1"
    assert aws.meta.endpoint_url == "https://sqs.eu-west-1.amazonaws.com"
    local = make_sqs_client(settings, "http://127.0.0.1:9324/000000000000/q")
    assert local.meta.endpoint_url == "http://127.0.0.1:9324"
    with pytest.raises(ValueError, match="MEDIA_PIPELINE_SQS_QUEUE_URL"):
        make_sqs_client(settings)


# -- SQS mode ------------------------------------------------------------------------------------


@pytest.fixture
def queue(settings: Settings, s3_client: Any, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, str]:
    """A queue on the same moto server receiving the bucket's ObjectCreated/Removed events,
    with the S3 test event it sends on configuration still in it."""
    sqs = boto3.client("sqs", endpoint_url=settings.endpoint_url, region_name="us-east-1",
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    url = sqs.create_queue(QueueName=f"q-{settings.bucket}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    s3_client.put_bucket_notification_configuration(
        Bucket=settings.bucket,
        NotificationConfiguration={"QueueConfigurations": [
            {"QueueArn": arn, "Events": ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"]}]},
    )
    monkeypatch.setenv("MEDIA_PIPELINE_SQS_QUEUE_URL", url)
    return sqs, url


def messages_left(sqs: Any, url: str) -> int:
    attrs = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]) + int(
        attrs["ApproximateNumberOfMessagesNotVisible"])


def test_sqs_events_become_one_run_request_and_the_messages_are_deleted(
    settings: Settings, s3_client: Any, queue: tuple[Any, str]
) -> None:
    sqs, url = queue
    keys = ["blog/a.png", UNUSUAL_KEY, "shop/x+y.png"]
    for i, key in enumerate(keys):
        upload(s3_client, settings, key, png(i), "image/png")
    s3_client.delete_object(Bucket=settings.bucket, Key="shop/x+y.png")

    result = tick(settings)

    assert len(result.run_requests) == 1
    request = result.run_requests[0]
    assert keys_of(request) == keys  # decoded, each once although x+y.png had two events
    assert request.run_key.startswith("sqs-")
    assert request.tags[sensors.TRIGGER_TAG] == "sqs"
    dg.validate_run_config(sensors.ingest_new_objects, request.run_config)
    assert messages_left(sqs, url) == 0
    again = tick(settings)
    assert again.run_requests == [] and "no new S3 events" in (again.skip_message or "")


def test_redelivered_messages_give_the_same_run_key(
    settings: Settings, s3_client: Any, queue: tuple[Any, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sqs, url = queue
    upload(s3_client, settings, "r/one.png", png(1), "image/png")
    upload(s3_client, settings, "r/two.png", png(2), "image/png")

    def refuse(*_: Any, **__: Any) -> int:
        raise RuntimeError("SQS is down")

    # Deleting fails (as if the daemon died after the tick): SQS delivers the messages again.
    monkeypatch.setattr(sensors, "delete_messages", refuse)
    monkeypatch.setattr(sensors, "SQS_VISIBILITY_TIMEOUT", 0)
    first = tick(settings)
    second = tick(settings)

    assert len(first.run_requests) == len(second.run_requests) == 1
    assert first.run_requests[0].run_key == second.run_requests[0].run_key
    assert keys_of(first.run_requests[0]) == keys_of(second.run_requests[0]) == [
        "r/one.png", "r/two.png"]
    assert messages_left(sqs, url) > 0


def test_malformed_messages_are_skipped_logged_and_deleted(
    settings: Settings, s3_client: Any, queue: tuple[Any, str], capsys: pytest.CaptureFixture[str]
) -> None:
    sqs, url = queue
    sqs.send_message(QueueUrl=url, MessageBody="this is not an S3 event")
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"Records": "nope"}))
    upload(s3_client, settings, "m/good.png", png(3), "image/png")

    result = tick(settings)

    assert [keys_of(r) for r in result.run_requests] == [["m/good.png"]]
    assert messages_left(sqs, url) == 0
    logged = capsys.readouterr().err  # the sensor's context.log
    assert "skipping SQS message" in logged and "not JSON" in logged
    assert "no Records list" in logged


def test_only_malformed_messages_give_no_run(
    settings: Settings, s3_client: Any, queue: tuple[Any, str]
) -> None:
    sqs, url = queue
    sqs.send_message(QueueUrl=url, MessageBody="{")
    result = tick(settings)
    assert result.run_requests == []
    assert "1 malformed" in (result.skip_message or "")
    assert messages_left(sqs, url) == 0


# -- listing mode --------------------------------------------------------------------------------


def test_listing_first_tick_requests_nothing_then_new_objects_one_run_each_tick(
    settings: Settings, s3_client: Any
) -> None:
    upload(s3_client, settings, "old/a.png", png(1), "image/png")
    upload(s3_client, settings, "old/b.png", png(2), "image/png")

    first = tick(settings)
    assert first.run_requests == [] and "left to the nightly" in (first.skip_message or "")
    assert first.cursor
    second = tick(settings, first.cursor)
    assert second.run_requests == [] and second.skip_message == "no new objects"

    upload(s3_client, settings, "new/c.png", png(3), "image/png")
    third = tick(settings, second.cursor)
    assert [keys_of(r) for r in third.run_requests] == [["new/c.png"]]
    assert third.run_requests[0].tags[sensors.TRIGGER_TAG] == "listing"
    assert tick(settings, third.cursor).run_requests == []

    # An overwrite has a new ETag: it is new content to ingest.
    upload(s3_client, settings, "old/a.png", png(4), "image/png")
    fourth = tick(settings, third.cursor)
    assert [keys_of(r) for r in fourth.run_requests] == [["old/a.png"]]
    # The same set of object versions gives the same run key.
    assert tick(settings, third.cursor).run_requests[0].run_key == fourth.run_requests[0].run_key


def test_an_unreadable_cursor_starts_over_instead_of_ingesting_the_bucket(
    settings: Settings, s3_client: Any
) -> None:
    upload(s3_client, settings, "a.png", png(1), "image/png")
    result = tick(settings, "{not json")
    assert result.run_requests == [] and json.loads(result.cursor)["seen"]


def obj(key: str, at: datetime, etag: str = "e") -> S3Object:
    return S3Object(bucket="b", key=key, size=1, etag=etag, last_modified=at)


T0 = datetime(2026, 11, 25, 1, 0, tzinfo=UTC)


def test_objects_at_the_cursors_own_timestamp_are_not_lost_nor_repeated() -> None:
    _, cursor, _ = sensors.listing_requests([obj("a", T0)], None)
    # b appears later with exactly the same LastModified as a (S3 has second precision).
    requests, cursor, _ = sensors.listing_requests([obj("a", T0), obj("b", T0)], cursor)
    assert [keys_of(r) for r in requests] == [["b"]]
    requests, _, _ = sensors.listing_requests([obj("a", T0), obj("b", T0)], cursor)
    assert requests == []


def test_a_slow_upload_stamped_before_newer_objects_is_still_seen() -> None:
    _, cursor, _ = sensors.listing_requests([obj("a", T0)], None)
    _, cursor, _ = sensors.listing_requests([obj("a", T0), obj("b", T0 + timedelta(minutes=5))],
                                            cursor)
    # S3 stamps an upload when it starts: this one became visible after b, dated before it.
    late = obj("slow", T0 + timedelta(minutes=1))
    requests, cursor, _ = sensors.listing_requests(
        [obj("a", T0), obj("b", T0 + timedelta(minutes=5)), late], cursor)
    assert [keys_of(r) for r in requests] == [["slow"]]
    # Older than the look-back: the nightly reconciliation's job, not the sensor's.
    ancient = obj("ancient", T0 - sensors.LISTING_LOOKBACK)
    requests, _, _ = sensors.listing_requests(
        [obj("a", T0), obj("b", T0 + timedelta(minutes=5)), late, ancient], cursor)
    assert requests == []


def test_many_new_objects_are_split_into_runs_of_bounded_size() -> None:
    _, cursor, _ = sensors.listing_requests([], None)  # an empty bucket: everything is new
    many = [obj(f"k{i:04d}", T0 + timedelta(seconds=i)) for i in range(1201)]
    requests, cursor, _ = sensors.listing_requests(many, cursor)
    assert [len(keys_of(r)) for r in requests] == [500, 500, 201]
    assert [k for r in requests for k in keys_of(r)] == [o.key for o in many]
    assert len({r.run_key for r in requests}) == 3
    # The cursor remembers only the look-back window, not the bucket.
    assert len(json.loads(cursor)["seen"]) == sensors.LISTING_LOOKBACK.total_seconds() + 1



def test_the_first_cursor_keeps_only_the_newest_window_of_a_shuffled_listing(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    import random

    monkeypatch.setattr(sensors, "PRUNE_EVERY", 10)
    listing = [obj(f"k{i:03d}", T0 + timedelta(minutes=i)) for i in range(100)]
    random.Random(3).shuffle(listing)  # listings come in key order, not time order

    requests, cursor, note = sensors.listing_requests(iter(listing), None)

    assert requests == [] and note is not None and "100 objects" in note
    state = json.loads(cursor)
    assert state["watermark"] == (T0 + timedelta(minutes=99)).isoformat()
    assert len(state["seen"]) == 16  # minutes 84..99: the 15-minute look-back, both ends in
    assert sensors.listing_requests(iter(listing), cursor)[0] == []

# -- the job -------------------------------------------------------------------------------------


def test_the_job_ingests_the_keys_of_a_run_request(settings: Settings, s3_client: Any) -> None:
    upload(s3_client, settings, "j/ok.png", png(5), "image/png")
    upload(s3_client, settings, "j/evil.svg",
           b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
           "image/svg+xml")
    result = sensors.ingest_new_objects.execute_in_process(
        run_config=sensors.run_config_for(["j/ok.png", "j/evil.svg", "j/absent.png"]),
        resources=dagster_resources(settings),
        instance=dg.DagsterInstance.ephemeral(),
    )
    assert result.success
    [output] = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
    metadata = {k: v.value for k, v in output.event_specific_data.metadata.items()}
    assert metadata["new"] == 2 and metadata["quarantined"] == 1 and metadata["gone"] == 1
    with Catalog.open(settings.catalog_location) as catalog:
        rows = dict(catalog.con.execute("SELECT key, status FROM media_files").fetchall())
        runs = catalog.con.execute("SELECT run_id FROM inventory_runs").fetchall()
    assert rows == {"j/ok.png": "active", "j/evil.svg": "quarantined"}
    assert runs == [(result.run_id,)]


def test_definitions_carry_the_sensor_and_its_job() -> None:
    from media_pipeline.definitions import defs as load_defs

    defs = load_defs()
    sensor = defs.resolve_sensor_def("new_s3_objects")
    assert sensor.job_name == "ingest_new_objects"
    assert sensor.minimum_interval_seconds == sensors.MINIMUM_INTERVAL_SECONDS
    job = defs.resolve_job_def("ingest_new_objects")
    assert job.graph.node_named("ingest_keys_op").definition.pool == "catalog"


def test_the_sensor_starts_running_only_when_a_queue_is_configured(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MEDIA_PIPELINE_SQS_QUEUE_URL", raising=False)
    assert sensors._sqs_configured() is False
    monkeypatch.setenv("MEDIA_PIPELINE_SQS_QUEUE_URL", "http://127.0.0.1:1/000000000000/q")
    assert sensors._sqs_configured() is True



@pytest.fixture
def forbidding_s3() -> Iterator[str]:
    """A real HTTP server on 127.0.0.1 that answers every S3 request 403, like a bucket whose
    policy denies us."""
    with serve(lambda request: Response(403)) as server:
        yield server.url


def test_keys_s3_refuses_fail_the_run_and_change_nothing(
    settings: Settings, forbidding_s3: str
) -> None:
    denied = Settings(**{**settings.__dict__, "endpoint_url": forbidding_s3})
    result = sensors.ingest_new_objects.execute_in_process(
        run_config=sensors.run_config_for(["d/one.png", "d/two.png"]),
        resources=dagster_resources(denied),
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )
    assert not result.success
    [failure] = [e for e in result.all_events if e.is_step_failure]
    data = failure.step_failure_data
    assert data is not None and data.user_failure_data is not None
    assert "2 keys could not be read from S3" in (data.user_failure_data.description or "")
    examples = data.user_failure_data.metadata["head_error_examples"].value
    assert set(examples) == {"d/one.png", "d/two.png"}
    assert all(v.startswith("403") for v in examples.values())
    with Catalog.open(settings.catalog_location) as catalog:
        assert catalog.con.execute("SELECT count(*) FROM media_files").fetchone() == (0,)
