"""The monitor's history: per-check time series, alerts, verdict changes and sign-offs."""
