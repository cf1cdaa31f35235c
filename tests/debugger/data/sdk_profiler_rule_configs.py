#!/usr/bin/env python3
"""Prints the ProfilerRuleConfigurations the real SageMaker SDK sends for each profiler rule
Trainyard evaluates (defaults, and with custom parameters), as JSON, to OUT.

usage: sdk_profiler_rule_configs.py OUT   (pyenv python3 with TY_SDK_PYTHONPATH)
The output is checked in as sdk_profiler_rule_configs.json; profiler_rules_test.cc makes an
evaluation of each, and tests/e2e/test_profiler_rules.py checks the SDK still sends exactly that.
"""
import json
import sys

from sagemaker.debugger import ProfilerRule, rule_configs


def main():
    rules = [
        ProfilerRule.sagemaker(rule_configs.LowGPUUtilization()),
        ProfilerRule.sagemaker(rule_configs.CPUBottleneck()),
        ProfilerRule.sagemaker(rule_configs.IOBottleneck()),
        ProfilerRule.sagemaker(rule_configs.GPUMemoryIncrease()),
        ProfilerRule.sagemaker(rule_configs.OverallSystemUsage()),
        ProfilerRule.sagemaker(rule_configs.MaxInitializationTime()),
        ProfilerRule.sagemaker(rule_configs.ProfilerReport()),
        ProfilerRule.sagemaker(rule_configs.CPUBottleneck(threshold=20, patience=5),
                               name="CPUBottleneckCustom"),
        ProfilerRule.sagemaker(rule_configs.ProfilerReport(CPUBottleneck_threshold=20,
                                                           lowgpuutilization_window=50,
                                                           StepOutlier_stddev=3),
                               name="ProfilerReportCustom"),
    ]
    out = []
    for r in rules:
        d = r.to_profiler_rule_config_dict()
        d.pop("RuleEvaluatorImage", None)  # a placeholder the estimator fills per region
        out.append(d)
    with open(sys.argv[1], "w") as f:
        json.dump(out, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
