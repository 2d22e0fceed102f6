"""Builders of the JSON Schemas of the three contracts, one module per contract.

:mod:`~monitor.contracts.policy` (the policy file), :mod:`~monitor.contracts.event`
(an event, plain or in a CloudEvents envelope) and :mod:`~monitor.contracts.alert`
(an alert record), with what they share in :mod:`~monitor.contracts.common`.
:mod:`monitor.schemas` picks a builder by name, renders and writes the
committed files.
"""
