"""Sinks: where window results go (CSV, JSON Lines, the terminal dashboard).

Every sink implements ``write(WindowScores)`` and ``close()`` (see
:class:`livesqa.monitor.Sink`); the row schema shared by CSV and JSONL is in
:mod:`livesqa.sinks.schema`.
"""
