"""S3 event notifications, as SQS delivers them, turned into the keys to ingest.

A bucket's notification configuration sends one SQS message per event (``Records[]``, keys
URL-encoded with ``+`` for spaces). An event only says *which key to look at*: ingest HEADs the
key and S3's answer decides, so created and removed events are handled alike and a late or
repeated event is harmless. Messages SNS wrapped on the way (S3 → SNS → SQS without raw
delivery) are unwrapped.

Nothing here raises for a bad message: a malformed one is logged, counted and handed back for
deletion, so it cannot come back forever and stall the queue.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import unquote_plus, urlsplit

import boto3
from botocore.config import Config

from media_pipeline.errors import MalformedMessage  # noqa: F401
from media_pipeline.settings import Settings

# Events after which a key may have appeared, changed, vanished or changed storage class.
# Tagging, ACL and replication events leave the catalog's facts as they are.
RELEVANT_EVENT_PREFIXES = (
    "ObjectCreated:",
    "ObjectRemoved:",
    "ObjectRestore:",
    "LifecycleExpiration:",
    "LifecycleTransition",
)
SQS_BATCH = 10  # ReceiveMessage and DeleteMessageBatch take at most 10
BODY_SHOWN = 200

logger = logging.getLogger(__name__)


class Log(Protocol):
    """What we need of a logger (``logging.Logger`` or Dagster's ``context.log``)."""

    def warning(self, msg: str, *args: Any, **kwargs: Any) -> Any: ...


def parse_message(body: str, bucket: str | None = None) -> list[str]:
    """The decoded keys one SQS message body names, in order (duplicates kept).

    ``s3:TestEvent`` (sent when a notification configuration is saved), events of other
    buckets (when ``bucket`` is given) and irrelevant event types give no keys. Anything that
    is not an S3 event notification raises :class:`MalformedMessage`.
    """
    try:
        doc = json.loads(body)
    except (json.JSONDecodeError, TypeError) as exc:
        raise MalformedMessage(f"not JSON: {exc}") from None
    if isinstance(doc, dict) and doc.get("Type") == "Notification" and "Message" in doc:
        return parse_message(doc["Message"], bucket)  # SNS envelope
    if not isinstance(doc, dict):
        raise MalformedMessage(f"a JSON {type(doc).__name__}, not an object")
    if doc.get("Event") == "s3:TestEvent":
        return []
    records = doc.get("Records")
    if not isinstance(records, list):
        raise MalformedMessage("no Records list: not an S3 event notification")
    keys: list[str] = []
    for index, record in enumerate(records):
        try:
            name = record["eventName"]
            s3 = record["s3"]
            encoded = s3["object"]["key"]
            record_bucket = s3["bucket"]["name"]
        except (KeyError, TypeError):
            raise MalformedMessage(
                f"record {index} lacks eventName, s3.bucket.name or s3.object.key") from None
        if not isinstance(name, str) or not isinstance(encoded, str) or not encoded:
            raise MalformedMessage(f"record {index} has no usable eventName or key")
        if bucket is not None and record_bucket != bucket:
            continue
        if not name.startswith(RELEVANT_EVENT_PREFIXES):
            continue
        keys.append(unquote_plus(encoded))
    return keys


@dataclass(frozen=True)
class PolledMessages:
    """What one poll of the queue received.

    ``keys`` are distinct, decoded, in arrival order. ``message_ids`` are those of the messages
    that named keys (stable across redeliveries, unlike receipt handles: what a run key is made
    of). ``receipt_handles`` cover every message received, malformed and test ones included,
    for deleting them all once their keys are handed on.
    """

    keys: list[str] = field(default_factory=list)
    message_ids: list[str] = field(default_factory=list)
    receipt_handles: list[str] = field(default_factory=list)
    malformed: int = 0
    without_keys: int = 0


def poll_sqs(
    client: Any,
    queue_url: str,
    max_messages: int = 100,
    *,
    bucket: str | None = None,
    wait_seconds: int = 1,
    visibility_timeout: int = 300,
    log: Log | None = None,
) -> PolledMessages:
    """Receive up to ``max_messages`` messages (10 per call) and read the keys they name.

    Received messages stay invisible for ``visibility_timeout`` seconds: if the caller never
    deletes them (it crashed), they come back after that. A message received twice in one poll
    (a queue with a very short visibility timeout) counts once.
    """
    log = log or logger
    seen: set[str] = set()
    message_ids: list[str] = []
    handles: list[str] = []
    keys: dict[str, None] = {}
    malformed = without_keys = 0
    while len(seen) < max_messages:
        response = client.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=min(SQS_BATCH, max_messages - len(seen)),
            WaitTimeSeconds=wait_seconds if not seen else 0,
            VisibilityTimeout=visibility_timeout,
        )
        messages = response.get("Messages") or []
        fresh = [m for m in messages if m.get("MessageId") not in seen]
        if not fresh:
            break
        for message in fresh:
            message_id = str(message.get("MessageId"))
            seen.add(message_id)
            handles.append(message["ReceiptHandle"])
            body = message.get("Body", "")
            try:
                found = parse_message(body, bucket)
            except MalformedMessage as exc:
                malformed += 1
                log.warning(
                    f"skipping SQS message {message_id}: {exc}; body starts "
                    f"{str(body)[:BODY_SHOWN]!r}")
                continue
            if not found:
                without_keys += 1
                continue
            message_ids.append(message_id)
            keys.update(dict.fromkeys(found))
    return PolledMessages(
        keys=list(keys), message_ids=message_ids, receipt_handles=handles,
        malformed=malformed, without_keys=without_keys,
    )


def delete_messages(client: Any, queue_url: str, receipt_handles: Sequence[str],
                    log: Log | None = None) -> int:
    """Delete received messages, 10 per call; returns how many SQS refused (logged: they come
    back after their visibility timeout and are ingested again, which is harmless)."""
    log = log or logger
    failed = 0
    for start in range(0, len(receipt_handles), SQS_BATCH):
        chunk = receipt_handles[start:start + SQS_BATCH]
        response = client.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": str(i), "ReceiptHandle": h} for i, h in enumerate(chunk)],
        )
        for failure in response.get("Failed") or []:
            failed += 1
            log.warning(f"SQS did not delete a message: {failure.get('Code')}: "
                        f"{failure.get('Message')}")
    return failed


def make_sqs_client(settings: Settings, queue_url: str | None = None) -> Any:
    """An SQS client for the queue: AWS's regional endpoint for an ``amazonaws.com`` queue URL
    (region taken from it), else the queue URL's own host (moto, LocalStack, ElasticMQ)."""
    url = queue_url or settings.sqs_queue_url
    if not url:
        raise ValueError("no SQS queue URL: set MEDIA_PIPELINE_SQS_QUEUE_URL")
    parts = urlsplit(url)
    host = parts.hostname or ""
    region = settings.region
    endpoint: str | None = f"{parts.scheme}://{parts.netloc}"
    if host.endswith((".amazonaws.com", ".amazonaws.com.cn")):
        endpoint = None
        labels = host.split(".")
        # sqs.<region>.amazonaws.com, or the legacy <region>.queue.amazonaws.com
        if labels[0] == "sqs" and len(labels) > 3:
            region = labels[1]
        elif len(labels) > 3 and labels[1] == "queue":
            region = labels[0]
    access_key, secret_key, token = (
        settings.access_key_id, settings.secret_access_key, settings.session_token)
    if settings.uses_embedded_s3:
        access_key, secret_key, token = "embedded", "embedded-secret", None
    session = boto3.session.Session(profile_name=settings.profile_name if not access_key else None)
    return session.client(
        "sqs",
        region_name=region,
        endpoint_url=endpoint,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        aws_session_token=token,
        config=Config(retries={"mode": "adaptive", "max_attempts": 5},
                      connect_timeout=10, read_timeout=40),
    )
