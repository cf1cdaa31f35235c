// Metric math for GetMetricData, the cheap part of CloudWatch's: arithmetic (+ - * /, unary
// minus, parentheses) between query ids and constants, and SUM / AVG / MIN / MAX of a list of
// series ([m1, m2] or m1, m2). Between two series an operator applies at the timestamps both
// have; between a series and a constant, at every timestamp of the series. SUM/AVG/MIN/MAX of
// several series give a series (per timestamp, over the series that have it); of one series,
// a single number, as in CloudWatch.
//
// Bounded: expressions of at most 2048 characters (the model's limit), nesting at most 32 deep.
// Thread-safe (pure functions).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <variant>
#include <vector>

#include "common/status.h"

namespace ty::services {

using TimeSeries = std::map<int64_t, double>;  // timestamp (ms) -> value
using MathValue = std::variant<double, TimeSeries>;

// The ids an expression names (to check they exist and order the evaluation).
Result<std::vector<std::string>> ExpressionIds(const std::string& expression);

// Evaluates `expression` with `series` bound to the ids. kInvalidArgument (with CloudWatch's
// kind of message) for a syntax error, an unknown id or function, or a too-deep expression.
Result<MathValue> EvaluateExpression(const std::string& expression,
                                     const std::map<std::string, TimeSeries>& series);

}  // namespace ty::services
