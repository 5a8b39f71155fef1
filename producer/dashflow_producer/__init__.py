"""Trace Studio's producer client: stream a DashFlow run to the server while it executes.

Standard library only. ``RunStreamer`` posts the run's events to
``POST /api/v1/runs/<execution_id>/events``; ``dashflow_producer.client`` says how it
batches, retries and counts what it has to drop.
"""

from dashflow_producer.client import RunStreamer, StreamStats, now_iso

__all__ = ["RunStreamer", "StreamStats", "now_iso"]
