#!/usr/bin/env python3
"""Writes the system-metrics fixture (profiler-output/system/...) and its expected summary.

The fixture is in the layout and line format smdebug's SystemMetricsReader reads (one file per
node and minute, JSON lines). tests/debugger/system_metrics_test.cc reads it with the C++ reader
and tests/e2e/test_profiler_rules.py with the real smdebug; both compare what they read with
expected_summary.json. Run from this directory to regenerate (the output is checked in).
"""
import json
import os
import shutil
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "profiler-output")
START = 1765134000  # 2025-12-07T19:00:00Z


def samples():
    for node in ("algo-1", "algo-2"):
        for i in range(150):  # 150 rounds, one per second: three minute files per node
            t = START + i + 0.25
            for c in range(2):
                yield node, t, {"Type": "cpu", "Name": "cpu%d" % c, "Dimension": "CPUUtilization",
                                "Value": float((i * 7 + c * 13) % 100)}
                yield node, t, {"Type": "cpu", "Name": "cpu%d" % c,
                                "Dimension": "I/OWaitPercentage", "Value": float((i + c) % 9)}
            if node == "algo-1":  # algo-2 has no GPU
                yield node, t, {"Type": "gpu", "Name": "gpu0", "Dimension": "GPUUtilization",
                                "Value": float((i * 3) % 101)}
                yield node, t, {"Type": "gpu", "Name": "gpu0",
                                "Dimension": "GPUMemoryUtilization", "Value": 20.0 + i / 10}
            # No Name: smdebug makes it optional.
            yield node, t, {"Type": "memory", "Dimension": "MemoryUsedPercent",
                            "Value": 40.5 + (i % 5)}


def main():
    shutil.rmtree(ROOT, ignore_errors=True)
    files = {}
    summary = {"samples": 0, "series": {}}
    for node, t, line in samples():
        minute = int(t) // 60 * 60
        hour = time.strftime("%Y%m%d%H", time.gmtime(minute))
        path = os.path.join(ROOT, "system", "incremental", hour, "%d.%s.json" % (minute, node))
        line = dict(line, NodeId=node, Timestamp=t)
        files.setdefault(path, []).append(json.dumps(line))
        key = "%s/%s" % (node, line["Dimension"])
        s = summary["series"].setdefault(key, {"count": 0, "sum": 0.0})
        s["count"] += 1
        s["sum"] += line["Value"]
        summary["samples"] += 1
    for path, lines in files.items():
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
    for s in summary["series"].values():
        s["sum"] = round(s["sum"], 6)
    summary["files"] = len(files)
    with open(os.path.join(HERE, "expected_summary.json"), "w") as f:
        json.dump(summary, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
