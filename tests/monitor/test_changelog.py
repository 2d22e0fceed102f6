"""The changelog of checkpoints: signed, chunked, the latest per key, on the real broker."""

from __future__ import annotations

import os
import uuid

import pytest

from monitor.broker import EmbeddedBroker, create_topics
from monitor.changelog import KafkaChangelog, open_checkpoint, seal_checkpoint
from monitor.config import KafkaSettings
from monitor.state import Checkpoint

SECRET = b"shared-by-the-replicas"


def _checkpoint(size: int = 100, offset: int = 7) -> Checkpoint:
    return Checkpoint(policy="p1", state=os.urandom(size), positions={"offset": offset})


def test_a_checkpoint_opens_only_with_its_secret_and_untampered() -> None:
    sealed = seal_checkpoint(_checkpoint(), SECRET)
    opened = open_checkpoint(sealed, SECRET)
    assert opened is not None and opened.positions == {"offset": 7}
    assert open_checkpoint(sealed, b"another secret") is None
    tampered = sealed[:-1] + bytes([sealed[-1] ^ 1])
    assert open_checkpoint(tampered, SECRET) is None
    assert open_checkpoint(b"not a checkpoint", SECRET) is None


@pytest.mark.kafka
def test_large_checkpoints_round_trip_and_the_latest_wins(broker: EmbeddedBroker) -> None:
    """3 MB of state (past the 1 MB record limit) in chunks; a newer save replaces it."""
    topic = f"changelog-{uuid.uuid4().hex[:8]}"
    create_topics(broker.bootstrap_servers, {topic: 1})
    settings = KafkaSettings(bootstrap_servers=broker.bootstrap_servers)
    log = KafkaChangelog(settings, topic, SECRET)
    big = _checkpoint(3_000_000, offset=10)
    try:
        log.save("g/events:0", big)
        log.save("g/events:1", _checkpoint(10, offset=3))
        log.save("g/events:1", _checkpoint(10, offset=4))
    finally:
        log.close()
    reader = KafkaChangelog(settings, topic, SECRET)
    try:
        got = reader.load(["g/events:0", "g/events:1", "g/events:2"])
    finally:
        reader.close()
    assert set(got) == {"g/events:0", "g/events:1"}
    assert got["g/events:0"].state == big.state
    assert got["g/events:1"].positions == {"offset": 4}
    stranger = KafkaChangelog(settings, topic, b"not the replicas' secret")
    try:
        assert stranger.load(["g/events:0"]) == {}
    finally:
        stranger.close()
