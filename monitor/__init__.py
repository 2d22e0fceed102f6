"""shiftwatch's service: sources, router, policy, checks, alerts, metrics and the CLI."""

from __future__ import annotations

from monitor.alerts import AlertRecord
from monitor.config import LimitsSettings
from monitor.events import ActionEvent, InferenceEvent, OutcomeEvent, Rejection, decode
from monitor.messages import Message
from monitor.pipeline import Ledger, Pipeline
from monitor.policy import Policy, PolicyError, load_policy

__all__ = [
    "ActionEvent",
    "AlertRecord",
    "InferenceEvent",
    "Ledger",
    "LimitsSettings",
    "Message",
    "OutcomeEvent",
    "Pipeline",
    "Policy",
    "PolicyError",
    "Rejection",
    "decode",
    "load_policy",
]
