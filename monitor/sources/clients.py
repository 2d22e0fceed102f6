"""The Kafka client behind ``run`` and ``demo``: ``kafka.client`` picks kafka-python or confluent.

confluent-kafka is an optional extra (``pip install 'shiftwatch[confluent]'``),
imported only when chosen, so the default install never needs it.
"""

from __future__ import annotations

from monitor.config import KafkaSettings
from monitor.messages import DeadLetterSink
from monitor.metrics import Metrics
from monitor.sources import GroupSource

__all__ = ["kafka_dead_letter_sink", "kafka_source"]


def kafka_source(settings: KafkaSettings, metrics: Metrics | None = None) -> GroupSource:
    """The consumer-group source on the configured client."""
    if settings.client == "confluent":
        from monitor.sources.confluent import ConfluentSource

        return ConfluentSource(settings, metrics)
    from monitor.sources.kafka import KafkaSource

    return KafkaSource(settings, metrics)


def kafka_dead_letter_sink(settings: KafkaSettings) -> DeadLetterSink:
    """The dead-letter topic's producer on the configured client."""
    if settings.client == "confluent":
        from monitor.sources.confluent import ConfluentDeadLetterSink

        return ConfluentDeadLetterSink(settings)
    from monitor.sources.kafka import KafkaDeadLetterSink

    return KafkaDeadLetterSink(settings)
