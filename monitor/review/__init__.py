"""``shiftwatch review``: the weekly report a model owner signs, built from the monitor's history.

- :mod:`monitor.review.period`: ``--since`` / ``--until`` turned into a period;
- :mod:`monitor.review.model`: the report as plain dataclasses;
- :mod:`monitor.review.build`: a :class:`~monitor.history.rows.HistorySource` read into one;
- :mod:`monitor.review.latency`, :mod:`monitor.review.ranking`,
  :mod:`monitor.review.incidents`, :mod:`monitor.review.tools`: the sections
  that compute something;
- :mod:`monitor.review.document` (with :mod:`monitor.review.layout` and
  :mod:`monitor.review.tradeoff`): the report as sections, for either format;
- :mod:`monitor.review.plots`, :mod:`monitor.review.html`,
  :mod:`monitor.review.markdown`: the report rendered;
- :mod:`monitor.review.commands`: ``shiftwatch review`` and ``shiftwatch review sign``;
- :mod:`monitor.review.prometheus` (with :mod:`monitor.review.promql` and
  :mod:`monitor.review.prometheus_rows`): the history read from a Prometheus server;
- :mod:`monitor.review.screenshot`: the report rendered to PNG by headless Chromium.
"""

from monitor.review.build import ReviewError, build_review
from monitor.review.model import Review

__all__ = ["Review", "ReviewError", "build_review"]
