"""Monitoring: drift of what the server sees against what the model learned, and performance.

- :mod:`~regressops.monitoring.reference` — the drift reference stored in the bundle;
- :mod:`~regressops.monitoring.methods` — the drift methods, declared once, and the default choice;
- :mod:`~regressops.monitoring.stats` — the statistics (numpy on sorted samples, equal to scipy's);
- :mod:`~regressops.monitoring.fitted` — a reference column fitted once, a current column;
- :mod:`~regressops.monitoring.drift` — :class:`DriftDetector` (fit once, calculate many);
- :mod:`~regressops.monitoring.window` — the prediction log read as columnar numpy blocks;
- :mod:`~regressops.monitoring.log_lines` — its JSON lines, numeric arrays decoded to float64;
- :mod:`~regressops.monitoring.log_fanout` — a large log decoded by forked processes;
- :mod:`~regressops.monitoring.tables` — CSV/Parquet tables as reference or current data;
- :mod:`~regressops.monitoring.performance` — labels joined with predictions, the verdict;
- :mod:`~regressops.monitoring.report_html` — the self-contained ``report.html``;
- :mod:`~regressops.monitoring.monitor` — the ``regressops monitor`` stage;
- :mod:`~regressops.monitoring.live` — the server's rolling window and its live drift.
"""
