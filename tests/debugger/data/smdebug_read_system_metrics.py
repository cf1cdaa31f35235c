#!/usr/bin/env python3
"""Reads a profiler output directory with the REAL smdebug LocalSystemMetricsReader and prints
the summary make_system_metrics_fixture.py writes (samples; count and sum per node/dimension;
files) as JSON to OUT (smdebug logs on stdout).

usage: smdebug_read_system_metrics.py PROFILER_OUTPUT_DIR OUT   (PROFILER_OUTPUT_DIR holds system/)
Run under /usr/bin/python3 with smdebug on PYTHONPATH (TY_SMDEBUG_PYTHONPATH).
"""
import json
import sys

from smdebug.profiler.system_metrics_reader import LocalSystemMetricsReader


def main():
    reader = LocalSystemMetricsReader(sys.argv[1])
    files = set()
    for names in reader._timestamp_to_filename.values():
        files.update(names)
    end_us = (reader.get_timestamp_of_latest_available_file() + 3600 * 1000 * 1000)
    events = reader.get_events(0, end_us)
    summary = {"samples": 0, "series": {}, "files": len(files)}
    for e in events:
        key = "%s/%s" % (e.node_id, e.dimension)
        s = summary["series"].setdefault(key, {"count": 0, "sum": 0.0})
        s["count"] += 1
        s["sum"] += e.value
        summary["samples"] += 1
    for s in summary["series"].values():
        s["sum"] = round(s["sum"], 6)
    with open(sys.argv[2], "w") as f:
        json.dump(summary, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
