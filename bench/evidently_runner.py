"""Run Evidently 0.7's DataDriftPreset on splits of a table; executed by a separate Python.

Evidently 0.7.23 does not import with pandas 3, so the drift benchmarks run this script with
the Python of its own environment (``uv venv /tmp/evid && uv pip install -p /tmp/evid
evidently==0.7.23 'pandas<3'``). Input (JSON on stdin): ``{"csv": path, "drop": [columns],
"splits": [{"ref": [rows], "cur": [rows], "shift": {"column": c, "by": x} | null}]}`` or
``{"csv_ref": path, "csv_cur": path, "repeat": n}`` for the speed benchmark. Output (JSON on
stdout): per split the drifted columns, or the seconds of each run.
"""

from __future__ import annotations

import json
import sys
import time


def _drifted(report_dict: dict) -> list[str]:
    drifted = []
    for metric in report_dict["metrics"]:
        config = metric.get("config", {})
        if config.get("type") != "evidently:metric_v2:ValueDrift":
            continue
        value, threshold = float(metric["value"]), float(config["threshold"])
        p_value = "p_value" in str(config.get("method", ""))
        if (value < threshold) if p_value else (value >= threshold):
            drifted.append(config["column"])
    return drifted


def main() -> None:
    import pandas as pd
    from evidently import Report
    from evidently.presets import DataDriftPreset

    job = json.load(sys.stdin)
    if "csv_ref" in job:
        ref, cur = pd.read_csv(job["csv_ref"]), pd.read_csv(job["csv_cur"])
        seconds, cpu = [], []
        for _ in range(int(job.get("repeat", 1))):
            started, cpu_started = time.perf_counter(), time.process_time()
            Report([DataDriftPreset()]).run(reference_data=ref, current_data=cur)
            seconds.append(time.perf_counter() - started)
            cpu.append(time.process_time() - cpu_started)
        json.dump({"seconds": seconds, "cpu_seconds": cpu}, sys.stdout)
        return
    frame = pd.read_csv(job["csv"]).drop(columns=job.get("drop", []))
    out = []
    for split in job["splits"]:
        ref = frame.iloc[split["ref"]].reset_index(drop=True)
        cur = frame.iloc[split["cur"]].reset_index(drop=True)
        shift = split.get("shift")
        if shift:
            cur[shift["column"]] = cur[shift["column"]] + shift["by"]
        snap = Report([DataDriftPreset()]).run(reference_data=ref, current_data=cur)
        out.append(_drifted(snap.dict()))
    json.dump({"drifted": out}, sys.stdout)


if __name__ == "__main__":
    main()
