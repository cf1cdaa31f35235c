"""The profiler rules' inputs checked against the real libraries in ../shared/clients.

- The system-metrics fixture the C++ reader is tested on (tests/debugger/data/profiler-output,
  checked by system_metrics_test.cc against expected_summary.json) is read by the REAL smdebug
  LocalSystemMetricsReader (under /usr/bin/python3) to the same summary; a truncated last line
  is skipped by both, and a corrupt line in the middle is refused by both.
- The ProfilerRuleConfigurations the REAL SageMaker SDK builds for our rules are exactly
  tests/debugger/data/sdk_profiler_rule_configs.json, which profiler_report_test.cc feeds to
  MakeProfilerRuleEvaluation.
Skips (saying so) when the clients folder is absent; set TY_CLIENTS to its path.
"""
import json
import os
import re
import shutil
import subprocess

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
DATA = os.path.join(ROOT, "tests", "debugger", "data")
CANDIDATES = [os.environ.get("TY_CLIENTS"),
              os.path.join(os.path.dirname(ROOT), "shared", "clients"),
              "/work/shared/clients"]


def clients_dir():
    for c in CANDIDATES:
        if c and os.path.isfile(os.path.join(c, "setup.sh")):
            return c
    pytest.skip("the real clients folder (../shared/clients) is absent; set TY_CLIENTS to its path")


@pytest.fixture(scope="module")
def pythonpaths(tmp_path_factory):
    clients = clients_dir()
    deps = tmp_path_factory.mktemp("client-deps")
    res = subprocess.run([os.path.join(clients, "setup.sh"), str(deps)], capture_output=True,
                         text=True, timeout=600)
    assert res.returncode == 0, f"{clients}/setup.sh failed:\n{res.stderr}"
    out = dict(re.findall(r"^export (TY_\w+)=(.*)$", res.stdout, re.M))
    assert "TY_SMDEBUG_PYTHONPATH" in out and "TY_SDK_PYTHONPATH" in out, res.stdout
    return out


def smdebug_summary(pythonpaths, profiler_dir, tmp_path):
    out = tmp_path / "summary.json"
    env = dict(os.environ, PYTHONPATH=pythonpaths["TY_SMDEBUG_PYTHONPATH"])
    res = subprocess.run(["/usr/bin/python3", os.path.join(DATA, "smdebug_read_system_metrics.py"),
                          str(profiler_dir), str(out)], capture_output=True, text=True, env=env,
                         timeout=300)
    return res, (json.loads(out.read_text()) if res.returncode == 0 else None)


def expected():
    with open(os.path.join(DATA, "expected_summary.json")) as f:
        return json.load(f)


def test_real_smdebug_reads_the_fixture_as_our_reader_does(pythonpaths, tmp_path):
    res, summary = smdebug_summary(pythonpaths, os.path.join(DATA, "profiler-output"), tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    assert summary == expected()


def copy_fixture(tmp_path):
    dst = tmp_path / "profiler-output"
    shutil.copytree(os.path.join(DATA, "profiler-output"), dst)
    files = sorted(str(p) for p in dst.rglob("*.algo-1.json"))
    assert files
    return dst, files[-1]


def test_real_smdebug_skips_a_truncated_last_line_like_ours(pythonpaths, tmp_path):
    dst, last = copy_fixture(tmp_path)
    with open(last, "a") as f:
        f.write('{"Type": "cpu", "Name": "cpu0", "Dimen')  # the writer died mid-line
    res, summary = smdebug_summary(pythonpaths, dst, tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    assert summary == expected()


def test_real_smdebug_refuses_a_corrupt_line_like_ours(pythonpaths, tmp_path):
    dst, last = copy_fixture(tmp_path)
    with open(last) as f:
        lines = f.readlines()
    lines.insert(3, '{"Type": "cpu", oops}\n')
    with open(last, "w") as f:
        f.writelines(lines)
    res, _ = smdebug_summary(pythonpaths, dst, tmp_path)
    assert res.returncode != 0
    assert "corrupted json format" in res.stderr, res.stderr[-3000:]


def test_real_sdk_sends_the_rule_configurations_our_tests_use(pythonpaths, tmp_path):
    out = tmp_path / "configs.json"
    env = dict(os.environ, PYTHONPATH=pythonpaths["TY_SDK_PYTHONPATH"])
    python = shutil.which("python3")
    res = subprocess.run([python, os.path.join(DATA, "sdk_profiler_rule_configs.py"), str(out)],
                         capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    with open(os.path.join(DATA, "sdk_profiler_rule_configs.json")) as f:
        assert json.loads(out.read_text()) == json.load(f)
