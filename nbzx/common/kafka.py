"""Kafka connections shared by every process: client settings, the producer, topic creation."""

from __future__ import annotations

import asyncio
import ssl
import time
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.conn import create_conn
from aiokafka.errors import (
    ClusterAuthorizationFailedError,
    GroupAuthorizationFailedError,
    KafkaError,
    SaslAuthenticationFailed,
    TopicAlreadyExistsError,
    TopicAuthorizationFailedError,
    TransactionalIdAuthorizationFailed,
)

from nbzx.common.config import MAX_BODY_BYTES, Config
from nbzx.common.logging import get_logger

log = get_logger(component="kafka")


def client_kwargs(cfg: Config) -> dict[str, Any]:
    """Connection settings (bootstrap, TLS, SASL) for any aiokafka client."""
    k = cfg.kafka
    kw: dict[str, Any] = {"bootstrap_servers": k.bootstrap, "security_protocol": k.security_protocol}
    if k.security_protocol in ("SSL", "SASL_SSL"):
        ctx = ssl.create_default_context(cafile=k.ssl_cafile)
        if k.ssl_certfile:
            ctx.load_cert_chain(k.ssl_certfile, k.ssl_keyfile)
        kw["ssl_context"] = ctx
    if k.security_protocol.startswith("SASL"):
        kw["sasl_mechanism"] = k.sasl_mechanism or "PLAIN"
        kw["sasl_plain_username"] = cfg.secrets.kafka_sasl_username
        kw["sasl_plain_password"] = cfg.secrets.kafka_sasl_password
    return kw


def new_consumer(cfg: Config, *topics: str, group: str | None = None, **overrides: Any) -> AIOKafkaConsumer:
    """An aiokafka consumer as every part of the service makes one: nothing committed on its own, from
    the earliest record when there is no position, fetches as large as our largest message. A group
    member also gets `consumer.*`'s session, heartbeat and rebalance timings, and a poll interval long
    enough for any round. `overrides` go last (a client id, a shorter fetch wait)."""
    kw: dict[str, Any] = {
        **client_kwargs(cfg),
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "max_partition_fetch_bytes": TOPIC_MAX_MESSAGE_BYTES,
    }
    if group is not None:
        c = cfg.consumer
        kw.update(
            group_id=group,
            max_poll_interval_ms=3_600_000,
            session_timeout_ms=c.session_timeout_ms,
            heartbeat_interval_ms=c.heartbeat_interval_ms,
            rebalance_timeout_ms=c.rebalance_timeout_ms,
        )
    return AIOKafkaConsumer(*topics, **{**kw, **overrides})


class ProduceUnavailable(Exception):
    """Kafka did not acknowledge the write in time: nothing may be acknowledged upstream."""


# What a cluster that enforces ACLs answers a client it does not let in (DESIGN §3).
AUTHORIZATION_ERRORS: tuple[type[Exception], ...] = (
    TopicAuthorizationFailedError,
    GroupAuthorizationFailedError,
    TransactionalIdAuthorizationFailed,
    ClusterAuthorizationFailedError,
)


class KafkaRefused(Exception):
    """The cluster refused this process's credentials, or their rights: waiting will not help."""


def refusal(cfg: Config, exc: BaseException) -> KafkaRefused | None:
    """A `KafkaRefused` naming the user and what it lacks when `exc` (or its cause) is an
    authentication or authorization refusal, else None."""
    while exc is not None and not isinstance(exc, (*AUTHORIZATION_ERRORS, SaslAuthenticationFailed, KafkaRefused)):
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    if exc is None:
        return None
    if isinstance(exc, KafkaRefused):
        return exc
    user = cfg.secrets.kafka_sasl_username or "(no SASL user)"
    if isinstance(exc, SaslAuthenticationFailed):
        return KafkaRefused(
            f"Kafka at {cfg.kafka.bootstrap} refused the credentials of {user} ({cfg.kafka.sasl_mechanism}): "
            "check NBZX_KAFKA_SASL_USERNAME and NBZX_KAFKA_SASL_PASSWORD"
        )
    return KafkaRefused(
        f"Kafka at {cfg.kafka.bootstrap} does not let {user} do this: {exc}; "
        "`nbzx kafka acls` prints the ACLs each component needs"
    )


async def check_credentials(cfg: Config) -> None:
    """Raise `KafkaRefused` when a SASL cluster refuses our credentials (said once, at start, instead of
    a client retrying in silence); a broker that cannot be reached is not a refusal."""
    if not cfg.kafka.security_protocol.startswith("SASL"):
        return
    kw = client_kwargs(cfg)
    for server in cfg.kafka.bootstrap.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            conn = await create_conn(
                host,
                int(port),
                client_id=f"{cfg.kafka.client_id}-check",
                request_timeout_ms=10_000,
                ssl_context=kw.get("ssl_context"),
                security_protocol=kw["security_protocol"],
                sasl_mechanism=kw["sasl_mechanism"],
                sasl_plain_username=kw["sasl_plain_username"],
                sasl_plain_password=kw["sasl_plain_password"],
            )
        except SaslAuthenticationFailed as exc:
            raise refusal(cfg, exc) or KafkaRefused(str(exc)) from exc
        except (KafkaError, OSError, TimeoutError):
            continue  # this broker is away: try the next one, or let the clients retry
        conn.close()
        return


class Producer:
    """An idempotent, acks=all producer that survives a broker that is down at start or later.

    `send` returns only after the broker acknowledged the record, or raises `ProduceUnavailable`
    within the produce timeout. A record that timed out may still be delivered later by the
    client's retries; consumers are idempotent, so the duplicate this can cause is harmless.
    """

    def __init__(self, cfg: Config, client_id: str | None = None) -> None:
        self._cfg = cfg
        self._client_id = client_id or cfg.kafka.client_id
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()
        self._timeout = cfg.kafka.produce_timeout_s
        self._refused_topics: set[str] = set()

    async def start(self) -> None:
        """Connect now if the cluster answers; otherwise the first `send` connects."""
        try:
            await self._ensure()
        except ProduceUnavailable as exc:
            log.warning("kafka_unavailable_at_start", error=str(exc))

    async def _ensure(self) -> AIOKafkaProducer:
        if self._producer is not None:
            return self._producer
        async with self._lock:
            if self._producer is None:
                timeout_ms = int(self._timeout * 1000)
                p = AIOKafkaProducer(
                    **client_kwargs(self._cfg),
                    client_id=self._client_id,
                    acks="all",
                    enable_idempotence=True,
                    linger_ms=1,
                    request_timeout_ms=max(timeout_ms, 1000),
                    metadata_max_age_ms=30_000,
                    max_request_size=PRODUCER_MAX_REQUEST_BYTES,
                )
                try:
                    await asyncio.wait_for(p.start(), self._timeout)
                except (KafkaError, OSError, TimeoutError) as exc:
                    await _quietly_stop(p)
                    # An idempotent producer needs WRITE on a topic before it may start at all.
                    self._note_refusal(exc, "(any: the idempotent producer)")
                    raise ProduceUnavailable(
                        f"cannot connect to Kafka at {self._cfg.kafka.bootstrap}: {exc!r}"
                    ) from exc
                self._producer = p
        return self._producer

    def _note_refusal(self, exc: BaseException, topic: str) -> None:
        """One error line per topic when the cluster refused us (a 503 follows every time)."""
        refused = refusal(self._cfg, exc)
        if refused is not None and topic not in self._refused_topics:
            self._refused_topics.add(topic)
            log.error("kafka_not_authorized", topic=topic, error=str(refused))

    async def send(self, topic: str, key: str, value: bytes) -> tuple[int, int]:
        """Produce one record and wait for the broker's ack; returns (partition, offset)."""
        producer = await self._ensure()
        try:
            md = await asyncio.wait_for(producer.send_and_wait(topic, value=value, key=key.encode()), self._timeout)
        except (KafkaError, OSError, TimeoutError) as exc:
            self._note_refusal(exc, topic)
            raise ProduceUnavailable(f"Kafka did not acknowledge within {self._timeout}s: {exc!r}") from exc
        return md.partition, md.offset

    async def ready(self) -> bool:
        """True when a metadata request to the cluster succeeds now."""
        try:
            producer = await self._ensure()
            await asyncio.wait_for(producer.client.fetch_all_metadata(), min(self._timeout, 3.0))
        except (ProduceUnavailable, KafkaError, OSError, TimeoutError):
            return False
        return True

    async def stop(self) -> None:
        """Flush and close."""
        if self._producer is not None:
            await _quietly_stop(self._producer)
            self._producer = None


async def _quietly_stop(p: AIOKafkaProducer) -> None:
    try:
        await asyncio.wait_for(p.stop(), 10)
    except Exception as exc:  # closing a producer whose broker is gone must not crash shutdown
        log.warning("kafka_producer_stop_failed", error=repr(exc))


async def topic_partitions(consumer: Any, topic: str) -> list[TopicPartition]:
    """All partitions of `topic`, asking the cluster when the client has no metadata for it yet."""
    parts = consumer.partitions_for_topic(topic)
    if not parts:
        await consumer._client.force_metadata_update()  # the topic may be newer than the client
        parts = consumer.partitions_for_topic(topic) or set()
    return [TopicPartition(topic, p) for p in sorted(parts)]


async def read_to_end(consumer: Any, topic: str, timeout_s: float = 10.0) -> list[Any]:
    """Assign every partition of `topic` and read from where the consumer stands (its group's committed
    offsets, or the beginning) up to the end offsets taken now. Returns the records."""
    tps = await topic_partitions(consumer, topic)
    if not tps:
        return []
    consumer.assign(tps)
    ends = await consumer.end_offsets(tps)
    records: list[Any] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
        for recs in (await consumer.getmany(timeout_ms=200)).values():
            records.extend(recs)
    return records


# Record sizes agree end to end: a webhook body (receiver.max_body_bytes, at most MAX_BODY_BYTES) fits
# in a ChangeEvent, and that event, JSON-escaped, in a DeadLetter, under what the producer sends,
# under what every topic (and the consumer's fetch) takes. DESIGN §3.
PRODUCER_MAX_REQUEST_BYTES = 8 * MAX_BODY_BYTES
TOPIC_MAX_MESSAGE_BYTES = PRODUCER_MAX_REQUEST_BYTES + 1024 * 1024


def topic_specs(cfg: Config) -> list[NewTopic]:
    """The topics of DESIGN.md section 3 with their partitions, replication and cleanup policy."""
    k, t = cfg.kafka, cfg.kafka.topics
    day_ms = 24 * 3600 * 1000
    size = {"max.message.bytes": str(TOPIC_MAX_MESSAGE_BYTES)}
    return [
        NewTopic(
            t.events,
            k.partitions,
            k.replication,
            topic_configs={"cleanup.policy": "delete", "retention.ms": str(7 * day_ms), **size},
        ),
        NewTopic(
            t.control,
            1,
            k.replication,
            topic_configs={"cleanup.policy": "delete", "retention.ms": str(7 * day_ms), **size},
        ),
        NewTopic(
            t.jobs,
            1,
            k.replication,
            topic_configs={"cleanup.policy": "compact", "min.cleanable.dirty.ratio": "0.1", **size},
        ),
        NewTopic(
            t.host_status,
            k.partitions,
            k.replication,
            topic_configs={"cleanup.policy": "compact", "min.cleanable.dirty.ratio": "0.1", **size},
        ),
        NewTopic(
            t.changelog,
            1,
            k.replication,
            topic_configs={"cleanup.policy": "compact", "min.cleanable.dirty.ratio": "0.1", **size},
        ),
        NewTopic(
            t.dlq,
            k.partitions,
            k.replication,
            topic_configs={"cleanup.policy": "delete", "retention.ms": str(30 * day_ms), **size},
        ),
    ]


async def create_topics(cfg: Config) -> dict[str, str]:
    """Create the topics that are missing (idempotent); returns topic -> 'created' | 'exists'."""
    admin = AIOKafkaAdminClient(**client_kwargs(cfg), client_id=f"{cfg.kafka.client_id}-admin")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        result: dict[str, str] = {}
        for spec in topic_specs(cfg):
            if spec.name in existing:
                result[spec.name] = "exists"
                continue
            try:
                await admin.create_topics([spec])
                result[spec.name] = "created"
            except TopicAlreadyExistsError:
                result[spec.name] = "exists"
        return result
    finally:
        await admin.close()
