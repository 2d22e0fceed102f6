"""Online statistics for comparing a candidate model with its baseline.

Usable on their own: no Kafka, HTTP or Prometheus imports.
"""

from __future__ import annotations

from detectors.base import Detector, Evidence
from detectors.calibration import detector_arl0, lorden_threshold
from detectors.distribution import DistributionShiftDetector
from detectors.label_age import EqualAgeRateDetector
from detectors.novel import NovelToolDetector
from detectors.rate import RateShiftDetector
from detectors.recovery import DistributionRecovery, RateRecovery, Recovery

__all__ = [
    "Detector",
    "DistributionRecovery",
    "DistributionShiftDetector",
    "EqualAgeRateDetector",
    "Evidence",
    "NovelToolDetector",
    "RateRecovery",
    "RateShiftDetector",
    "Recovery",
    "detector_arl0",
    "lorden_threshold",
]
