// The built-in debugger rules (spec debugger.md §3.3) and the Evaluation that drives one of them
// over a job's trial. What each rule computes is written out in README.md ("Built-in debugger
// rules"); where AWS never published the formula we implement the spec's proposal.
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <functional>
#include <set>
#include <sstream>

#include "debugger/evaluation.h"
#include "debugger/rules_internal.h"
#include "debugger/trial.h"

namespace ty::debugger {

namespace {

std::string Num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g", v);
  return buf;
}

nlohmann::json JsonNum(double v) {
  if (std::isfinite(v)) return v;
  return std::isnan(v) ? "NaN" : (v > 0 ? "Infinity" : "-Infinity");
}

// RuleParameters, strings as the SDK sends them. Every getter names the parameter in its error.
class Params {
 public:
  Params(std::string rule, const std::map<std::string, std::string>& p)
      : rule_(std::move(rule)), p_(p) {}

  std::optional<std::string> Raw(const std::string& key) {
    used_.insert(key);
    auto it = p_.find(key);
    if (it == p_.end()) return std::nullopt;
    std::string v = Trim(it->second);
    if (v.empty() || v == "None") return std::nullopt;
    return v;
  }
  Result<std::optional<double>> OptDouble(const std::string& key) {
    auto v = Raw(key);
    if (!v) return std::optional<double>();
    errno = 0;
    char* end = nullptr;
    double d = std::strtod(v->c_str(), &end);
    if (errno != 0 || end != v->c_str() + v->size() || !std::isfinite(d)) {
      return Bad(key, *v, "a number");
    }
    return std::optional<double>(d);
  }
  Result<double> Double(const std::string& key, double def, double lo = -HUGE_VAL,
                        double hi = HUGE_VAL) {
    TY_ASSIGN_OR_RETURN(std::optional<double> v, OptDouble(key));
    double d = v.value_or(def);
    if (d < lo || d > hi) {
      return Bad(key, *Raw(key), "a number between " + Num(lo) + " and " + Num(hi));
    }
    return d;
  }
  Result<std::optional<int64_t>> OptInt(const std::string& key, int64_t lo, int64_t hi) {
    auto v = Raw(key);
    if (!v) return std::optional<int64_t>();
    errno = 0;
    char* end = nullptr;
    long long n = std::strtoll(v->c_str(), &end, 10);
    if (errno != 0 || end != v->c_str() + v->size() || n < lo || n > hi) {
      return Bad(key, *v,
                 "an integer between " + std::to_string(lo) + " and " + std::to_string(hi));
    }
    return std::optional<int64_t>(n);
  }
  Result<int64_t> Int(const std::string& key, int64_t def, int64_t lo, int64_t hi) {
    TY_ASSIGN_OR_RETURN(std::optional<int64_t> v, OptInt(key, lo, hi));
    return v.value_or(def);
  }
  Result<bool> Bool(const std::string& key, bool def) {
    auto v = Raw(key);
    if (!v) return def;
    std::string l = *v;
    std::transform(l.begin(), l.end(), l.begin(), ::tolower);
    if (l == "true" || l == "1") return true;
    if (l == "false" || l == "0") return false;
    return Bad(key, *v, "True or False");
  }
  std::vector<std::string> List(const std::string& key) {
    std::vector<std::string> out;
    auto v = Raw(key);
    if (!v) return out;
    std::stringstream ss(*v);
    std::string item;
    while (std::getline(ss, item, ',')) {
      item = Trim(item);
      if (!item.empty()) out.push_back(item);
    }
    return out;
  }
  Result<std::optional<std::string>> Regex(const std::string& key) {
    auto v = Raw(key);
    if (!v) return std::optional<std::string>();
    Result<bool> ok = RegexSearch(*v, "");
    if (!ok.ok()) {
      return InvalidArgument("Invalid value for parameter '" + key + "' of rule " + rule_ + ": " +
                             ok.status().message());
    }
    return v;
  }
  // Parameters the rule does not take are refused, so a misspelt one is not silently ignored.
  Status CheckUnused() {
    for (const auto& [k, v] : p_) {
      if (used_.count(k) || k == "rule_to_invoke" || k == "action_json" || k == "start_step" ||
          k == "end_step" || k.rfind("other_trial", 0) == 0) {
        continue;
      }
      std::string known;
      for (const auto& u : used_) known += (known.empty() ? "" : ", ") + u;
      return InvalidArgument("Rule " + rule_ + " has no parameter '" + k + "'" +
                             (known.empty() ? "." : ". Its parameters: " + known + "."));
    }
    return Status::Ok();
  }

 private:
  static std::string Trim(const std::string& s) {
    size_t b = s.find_first_not_of(" \t\r\n");
    if (b == std::string::npos) return "";
    size_t e = s.find_last_not_of(" \t\r\n");
    return s.substr(b, e - b + 1);
  }
  Status Bad(const std::string& key, const std::string& v, const std::string& want) {
    return InvalidArgument("Invalid value '" + v + "' for parameter '" + key + "' of rule " +
                           rule_ + ": expected " + want + ".");
  }

  std::string rule_;
  const std::map<std::string, std::string>& p_;
  std::set<std::string> used_;
};

// Which tensors a rule inspects: the union of collections and regexes (all tensors when both
// are empty and all_by_default).
struct Selection {
  std::vector<std::string> collections;
  std::vector<std::string> regexes;
  bool all_by_default = true;

  Result<std::vector<std::string>> Names(Trial& trial, int64_t step) const {
    std::set<std::string> out;
    TensorFilter f;
    f.step = step;
    if (collections.empty() && regexes.empty()) {
      if (!all_by_default) return std::vector<std::string>();
      TY_ASSIGN_OR_RETURN(std::vector<std::string> all, trial.tensor_names(f));
      return all;
    }
    for (const auto& c : collections) {
      if (!trial.collections().count(c)) continue;  // a collection the hook never had: empty
      TensorFilter fc = f;
      fc.collection = c;
      TY_ASSIGN_OR_RETURN(std::vector<std::string> names, trial.tensor_names(fc));
      out.insert(names.begin(), names.end());
    }
    for (const auto& r : regexes) {
      TensorFilter fr = f;
      fr.regex = r;
      TY_ASSIGN_OR_RETURN(std::vector<std::string> names, trial.tensor_names(fr));
      out.insert(names.begin(), names.end());
    }
    return std::vector<std::string>(out.begin(), out.end());
  }
};

Result<Selection> ParseSelection(Params& p, bool all_by_default = true) {
  Selection s;
  s.collections = p.List("collection_names");
  TY_ASSIGN_OR_RETURN(std::optional<std::string> re, p.Regex("tensor_regex"));
  if (re) s.regexes.push_back(*re);
  s.all_by_default = all_by_default;
  return s;
}

// A raw value, or nullopt when only reductions (or nothing) were saved at that step. Errors
// other than "not there" (malformed data, store failures) propagate.
Result<std::optional<NDArray>> RawValue(Trial& trial, const std::string& name, int64_t step) {
  TY_ASSIGN_OR_RETURN(Tensor t, trial.tensor(name));
  Result<NDArray> v = t.value(step);
  if (v.ok()) return std::optional<NDArray>(std::move(*v));
  StatusCode c = v.status().code();
  if (c == StatusCode::kNotFound || c == StatusCode::kFailedPrecondition) {
    return std::optional<NDArray>();
  }
  return v.status();
}

Result<std::optional<double>> Reduction(Trial& trial, const std::string& name, int64_t step,
                                        const std::string& red, bool abs) {
  TY_ASSIGN_OR_RETURN(Tensor t, trial.tensor(name));
  Result<double> v = t.reduction(step, red, abs);
  if (v.ok()) return std::optional<double>(*v);
  StatusCode c = v.status().code();
  if (c == StatusCode::kNotFound || c == StatusCode::kFailedPrecondition) {
    return std::optional<double>();
  }
  if (c == StatusCode::kInvalidArgument &&
      v.status().message().find("empty tensor") != std::string::npos) {
    return std::optional<double>();
  }
  return v.status();
}

// Scalar (one-element) value of `name` at `step`, from the raw tensor or its saved mean.
Result<std::optional<double>> Scalar(Trial& trial, const std::string& name, int64_t step) {
  TY_ASSIGN_OR_RETURN(std::optional<NDArray> v, RawValue(trial, name, step));
  if (v) {
    if (v->values.size() != 1) return std::optional<double>();
    return std::optional<double>(v->values[0]);
  }
  return std::optional<double>();
}

std::optional<Finding> Fire(const std::string& rule, const std::string& what, int64_t step,
                            nlohmann::json f) {
  Finding out;
  out.details = rule + ": " + what + " at step " + std::to_string(step);
  f["rule"] = rule;
  f["step"] = step;
  out.findings = std::move(f);
  return out;
}

// ---- VanishingGradient ----
class VanishingGradient : public RuleLogic {
 public:
  explicit VanishingGradient(double threshold) : threshold_(threshold) {}
  Result<std::optional<Finding>> Evaluate(Trial& trial, int64_t step) override {
    Selection sel;
    sel.collections = {"gradients"};
    if (!trial.collections().count("gradients")) sel.regexes = {"^gradient"};
    TY_ASSIGN_OR_RETURN(std::vector<std::string> names, sel.Names(trial, step));
    for (const auto& n : names) {
      TY_ASSIGN_OR_RETURN(std::optional<double> m, Reduction(trial, n, step, "mean", true));
      if (m && *m < threshold_) {
        return Fire(
            "VanishingGradient", n + " abs mean " + Num(*m) + " < threshold " + Num(threshold_),
            step,
            {{"tensors", {{{"name", n}, {"abs_mean", JsonNum(*m)}}}}, {"threshold", threshold_}});
      }
    }
    return std::optional<Finding>();
  }

 private:
  double threshold_;
};

// ---- ExplodingTensor ----
class ExplodingTensor : public RuleLogic {
 public:
  ExplodingTensor(Selection sel, bool only_nan) : sel_(std::move(sel)), only_nan_(only_nan) {}
  Result<std::optional<Finding>> Evaluate(Trial& trial, int64_t step) override {
    TY_ASSIGN_OR_RETURN(std::vector<std::string> names, sel_.Names(trial, step));
    for (const auto& n : names) {
      TY_ASSIGN_OR_RETURN(std::optional<NDArray> v, RawValue(trial, n, step));
      std::vector<double> check;
      if (v) {
        check = std::move(v->values);
      } else {
        // Only reductions saved: check those (a NaN anywhere makes its mean, min or max NaN).
        for (const char* r : {"min", "max", "mean"}) {
          for (bool abs : {false, true}) {
            TY_ASSIGN_OR_RETURN(Tensor t, trial.tensor(n));
            Result<double> x = t.reduction(step, r, abs);
            if (x.ok()) check.push_back(*x);
          }
        }
      }
      for (double x : check) {
        bool bad = only_nan_ ? std::isnan(x) : !std::isfinite(x);
        if (bad) {
          return Fire(
              "ExplodingTensor", n + " has a " + (std::isnan(x) ? "NaN" : "infinite") + " value",
              step, {{"tensors", {{{"name", n}, {"value", JsonNum(x)}}}}, {"only_nan", only_nan_}});
        }
      }
    }
    return std::optional<Finding>();
  }

 private:
  Selection sel_;
  bool only_nan_;
};

// ---- LossNotDecreasing ----
class LossNotDecreasing : public RuleLogic {
 public:
  LossNotDecreasing(Selection sel, bool use_losses, int64_t num_steps, double diff_percent,
                    double increase_percent, std::optional<Mode> mode)
      : sel_(std::move(sel)),
        num_steps_(num_steps),
        diff_percent_(diff_percent),
        increase_percent_(increase_percent),
        mode_(mode) {
    if (use_losses) sel_.collections.push_back("losses");
    sel_.all_by_default = false;
  }
  Result<std::optional<Finding>> Evaluate(Trial& trial, int64_t step) override {
    auto ms = trial.mode_step(step);
    if (!ms) return std::optional<Finding>();
    Mode mode = ms->first;
    int64_t mstep = ms->second;
    if (mode_ && *mode_ != Mode::kGlobal) {
      if (mode != *mode_) return std::optional<Finding>();
    } else if (mode_ && *mode_ == Mode::kGlobal) {
      mode = Mode::kGlobal;
      mstep = step;
    }
    TY_ASSIGN_OR_RETURN(std::vector<std::string> names, sel_.Names(trial, step));
    std::vector<std::pair<std::string, double>> values;
    for (const auto& n : names) {
      TY_ASSIGN_OR_RETURN(std::optional<double> v, Scalar(trial, n, step));
      if (v) values.emplace_back(n, *v);
    }
    std::optional<Finding> fired;
    for (const auto& [n, cur] : values) {
      Series& s = series_[{n, mode}];
      s.history[mstep] = cur;
      if (fired || mstep < s.next_eval) continue;
      auto base = s.history.upper_bound(mstep - num_steps_);
      if (base == s.history.begin()) continue;  // no baseline num_steps back yet
      --base;
      const double prev = base->second;
      s.next_eval = mstep + num_steps_;
      s.history.erase(s.history.begin(), base);  // older values can never be a baseline again
      const double denom = std::fabs(prev) > 0 ? std::fabs(prev) : 1e-30;
      bool fire = false;
      std::string why;
      if (cur < prev) {
        double d = 100.0 * (prev - cur) / denom;
        fire = d < diff_percent_;
        why = "decreased by only " + Num(d) + "% (< diff_percent " + Num(diff_percent_) + ")";
      } else if (cur == prev) {
        fire = true;
        why = "did not decrease";
      } else {
        double inc = 100.0 * (cur - prev) / denom;
        fire = inc > increase_percent_;
        why = "increased by " + Num(inc) + "% (> increase_threshold_percent " +
              Num(increase_percent_) + ")";
      }
      if (fire) {
        fired = Fire("LossNotDecreasing",
                     n + " " + ModeName(mode) + " loss " + Num(cur) + " at mode step " +
                         std::to_string(mstep) + " vs " + Num(prev) + " at mode step " +
                         std::to_string(base->first) + ": " + why,
                     step,
                     {{"tensors",
                       {{{"name", n},
                         {"value", JsonNum(cur)},
                         {"baseline", JsonNum(prev)},
                         {"baseline_mode_step", base->first}}}},
                      {"mode", ModeName(mode)}});
      }
    }
    return fired;
  }

 private:
  struct Series {
    std::map<int64_t, double> history;  // mode step -> loss
    int64_t next_eval = INT64_MIN;
  };
  Selection sel_;
  int64_t num_steps_;
  double diff_percent_, increase_percent_;
  std::optional<Mode> mode_;
  std::map<std::pair<std::string, Mode>, Series> series_;
};

// Loss values (losses collection plus a regex) at a step.
Result<std::vector<std::pair<std::string, double>>> Losses(Trial& trial, int64_t step,
                                                           const Selection& sel) {
  std::vector<std::pair<std::string, double>> out;
  TY_ASSIGN_OR_RETURN(std::vector<std::string> names, sel.Names(trial, step));
  for (const auto& n : names) {
    TY_ASSIGN_OR_RETURN(std::optional<double> v, Scalar(trial, n, step));
    if (v) out.emplace_back(n, *v);
  }
  return out;
}

Selection LossSelection(std::optional<std::string> regex) {
  Selection s;
  s.collections = {"losses"};
  if (regex) s.regexes = {*regex};
  s.all_by_default = false;
  return s;
}

// ---- Overfit ----
class Overfit : public RuleLogic {
 public:
  Overfit(Selection sel, int64_t start_step, int64_t patience, double ratio_threshold)
      : sel_(std::move(sel)),
        start_step_(start_step),
        patience_(patience),
        ratio_(ratio_threshold) {}
  Result<std::optional<Finding>> Evaluate(Trial& trial, int64_t step) override {
    auto ms = trial.mode_step(step);
    if (!ms || step < start_step_) return std::optional<Finding>();
    TY_ASSIGN_OR_RETURN(auto losses, Losses(trial, step, sel_));
    std::optional<Finding> out;
    // An evaluation closes at the first TRAIN step after a validation phase.
    if (ms->first == Mode::kTrain && !eval_.empty() && !train_.empty()) out = Check(step);
    for (const auto& [n, v] : losses) {
      if (ms->first == Mode::kTrain) train_.push_back(v);
      if (ms->first == Mode::kEval) eval_.push_back(v);
    }
    last_step_ = step;
    return out;
  }
  Result<std::optional<Finding>> Finish(Trial&) override {
    if (!eval_.empty() && !train_.empty()) return Check(last_step_);
    return std::optional<Finding>();
  }

 private:
  std::optional<Finding> Check(int64_t step) {
    double mt = 0, mv = 0;
    for (double v : train_) mt += v;
    for (double v : eval_) mv += v;
    mt /= static_cast<double>(train_.size());
    mv /= static_cast<double>(eval_.size());
    train_.clear();
    eval_.clear();
    double ratio = (mv - mt) / (std::fabs(mt) > 0 ? std::fabs(mt) : 1e-30);
    count_ = ratio > ratio_ ? count_ + 1 : 0;
    if (count_ >= patience_) {
      return Fire("Overfit",
                  "validation loss " + Num(mv) + " vs training loss " + Num(mt) + ": ratio " +
                      Num(ratio) + " > ratio_threshold " + Num(ratio_) + " for " +
                      std::to_string(count_) + " evaluation(s)",
                  step,
                  {{"mean_train_loss", JsonNum(mt)},
                   {"mean_validation_loss", JsonNum(mv)},
                   {"ratio", JsonNum(ratio)},
                   {"ratio_threshold", ratio_}});
    }
    return std::nullopt;
  }
  Selection sel_;
  int64_t start_step_, patience_;
  double ratio_;
  std::vector<double> train_, eval_;
  int64_t count_ = 0;
  int64_t last_step_ = 0;
};

// ---- Overtraining ----
class Overtraining : public RuleLogic {
 public:
  Overtraining(int64_t patience_train, int64_t patience_val, double delta)
      : patience_train_(patience_train), patience_val_(patience_val), delta_(delta) {}
  Result<std::optional<Finding>> Evaluate(Trial& trial, int64_t step) override {
    auto ms = trial.mode_step(step);
    if (!ms || (ms->first != Mode::kTrain && ms->first != Mode::kEval)) {
      return std::optional<Finding>();
    }
    TY_ASSIGN_OR_RETURN(auto losses, Losses(trial, step, LossSelection(std::nullopt)));
    std::optional<Finding> out;
    for (const auto& [n, v] : losses) {
      Track& t = track_[{n, ms->first}];
      if (!t.best || v < *t.best - delta_) {
        t.best = v;
        t.stale = 0;
      } else {
        ++t.stale;
      }
      const int64_t patience = ms->first == Mode::kTrain ? patience_train_ : patience_val_;
      if (!out && t.stale >= patience) {
        const char* which = ms->first == Mode::kTrain ? "training" : "validation";
        out = Fire("Overtraining",
                   std::string(which) + " loss " + n + " has not improved by more than delta " +
                       Num(delta_) + " on its best " + Num(*t.best) + " for " +
                       std::to_string(t.stale) + " saved steps",
                   step,
                   {{"tensors", {{{"name", n}, {"value", JsonNum(v)}, {"best", JsonNum(*t.best)}}}},
                    {"steps_without_improvement", t.stale}});
      }
    }
    return out;
  }

 private:
  struct Track {
    std::optional<double> best;
    int64_t stale = 0;
  };
  int64_t patience_train_, patience_val_;
  double delta_;
  std::map<std::pair<std::string, Mode>, Track> track_;
};

// numpy's percentile (linear interpolation) of sorted values.
double Percentile(const std::vector<double>& sorted, double p) {
  double pos = p / 100.0 * static_cast<double>(sorted.size() - 1);
  auto lo = static_cast<size_t>(std::floor(pos));
  size_t hi = std::min(lo + 1, sorted.size() - 1);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - static_cast<double>(lo));
}

// ---- PoorWeightInitialization ----
class PoorWeightInitialization : public RuleLogic {
 public:
  PoorWeightInitialization(std::string regex, double threshold, double range, int64_t patience,
                           int64_t steps)
      : regex_(std::move(regex)),
        threshold_(threshold),
        range_(range),
        patience_(patience),
        steps_(steps) {}
  Result<std::optional<Finding>> Evaluate(Trial& trial, int64_t step) override {
    if (seen_ >= steps_) return std::optional<Finding>();
    Selection act;
    act.regexes = {regex_};
    TY_ASSIGN_OR_RETURN(std::vector<std::string> names, act.Names(trial, step));
    std::vector<std::pair<std::string, double>> vars;
    for (const auto& n : names) {
      TY_ASSIGN_OR_RETURN(std::optional<double> v, Reduction(trial, n, step, "variance", false));
      if (v) vars.emplace_back(n, *v);
    }
    Selection grads;
    grads.collections = {"gradients"};
    grads.all_by_default = false;
    TY_ASSIGN_OR_RETURN(std::vector<std::string> gnames, grads.Names(trial, step));
    std::vector<std::pair<std::string, double>> spreads;
    for (const auto& n : gnames) {
      TY_ASSIGN_OR_RETURN(std::optional<NDArray> v, RawValue(trial, n, step));
      if (!v || v->values.size() < 2) continue;
      // NaNs would break std::sort's ordering (ExplodingTensor is the rule for them).
      std::vector<double> s;
      s.reserve(v->values.size());
      for (double x : v->values) {
        if (!std::isnan(x)) s.push_back(x);
      }
      if (s.size() < 2) continue;
      std::sort(s.begin(), s.end());
      spreads.emplace_back(n, Percentile(s, 95) - Percentile(s, 5));
    }
    TY_ASSIGN_OR_RETURN(auto losses, Losses(trial, step, LossSelection(std::nullopt)));
    ++seen_;
    if (vars.size() >= 2) {
      auto [mn, mx] = std::minmax_element(vars.begin(), vars.end(),
                                          [](auto& a, auto& b) { return a.second < b.second; });
      double ratio = mn->second > 0 ? mx->second / mn->second : HUGE_VAL;
      if (ratio > threshold_) {
        return Fire("PoorWeightInitialization",
                    "activation-input variance ratio across layers " + Num(ratio) + " (" +
                        mx->first + " " + Num(mx->second) + " / " + mn->first + " " +
                        Num(mn->second) + ") > threshold " + Num(threshold_),
                    step,
                    {{"max_variance", {{"name", mx->first}, {"value", JsonNum(mx->second)}}},
                     {"min_variance", {{"name", mn->first}, {"value", JsonNum(mn->second)}}},
                     {"ratio", JsonNum(ratio)},
                     {"threshold", threshold_}});
      }
    }
    for (const auto& [n, spread] : spreads) {
      if (spread < range_) {
        return Fire("PoorWeightInitialization",
                    n + " p95 - p5 " + Num(spread) + " < distribution_range " + Num(range_), step,
                    {{"tensors", {{{"name", n}, {"p95_minus_p5", JsonNum(spread)}}}},
                     {"distribution_range", range_}});
      }
    }
    for (const auto& [n, v] : losses) {
      auto& [best, stale] = loss_[n];
      if (!best || v < *best) {
        best = v;
        stale = 0;
      } else if (++stale >= patience_) {
        return Fire(
            "PoorWeightInitialization",
            "loss " + n + " has not decreased for " + std::to_string(stale) +
                " saved steps (patience " + std::to_string(patience_) + ")",
            step, {{"tensors", {{{"name", n}, {"value", JsonNum(v)}, {"best", JsonNum(*best)}}}}});
      }
    }
    return std::optional<Finding>();
  }

 private:
  std::string regex_;
  double threshold_, range_;
  int64_t patience_, steps_;
  int64_t seen_ = 0;
  std::map<std::string, std::pair<std::optional<double>, int64_t>> loss_;
};

// Per-unit activity over the batch (axis 0): the % of units whose activity is below
// threshold_inactivity.
double InactiveUnitsPercent(const NDArray& v, const std::function<bool(double)>& active,
                            double threshold_inactivity) {
  const size_t batch = v.shape.empty() ? 1 : static_cast<size_t>(std::max<int64_t>(v.shape[0], 1));
  const size_t units = v.values.size() / batch;
  if (units == 0) return 0;
  size_t inactive = 0;
  for (size_t u = 0; u < units; ++u) {
    size_t act = 0;
    for (size_t b = 0; b < batch; ++b) act += active(v.values[b * units + u]) ? 1 : 0;
    if (100.0 * static_cast<double>(act) / static_cast<double>(batch) < threshold_inactivity)
      ++inactive;
  }
  return 100.0 * static_cast<double>(inactive) / static_cast<double>(units);
}

// ---- SaturatedActivation / DeadRelu ----
class InactiveUnits : public RuleLogic {
 public:
  struct Range {
    double tanh_min, tanh_max, sigmoid_min, sigmoid_max;
  };
  // relu: DeadRelu (active = output > 0); otherwise SaturatedActivation with `range`.
  InactiveUnits(std::string rule, Selection sel, bool relu, Range range, double inactivity,
                double layer)
      : rule_(std::move(rule)),
        sel_(std::move(sel)),
        relu_(relu),
        range_(range),
        inactivity_(inactivity),
        layer_(layer) {}
  Result<std::optional<Finding>> Evaluate(Trial& trial, int64_t step) override {
    TY_ASSIGN_OR_RETURN(std::vector<std::string> names, sel_.Names(trial, step));
    for (const auto& n : names) {
      std::function<bool(double)> active;
      if (relu_) {
        active = [](double x) { return x > 0; };
      } else if (n.find("tanh") != std::string::npos) {
        active = [this](double x) { return x > range_.tanh_min && x < range_.tanh_max; };
      } else if (n.find("sigmoid") != std::string::npos) {
        active = [this](double x) { return x > range_.sigmoid_min && x < range_.sigmoid_max; };
      } else {
        continue;
      }
      TY_ASSIGN_OR_RETURN(std::optional<NDArray> v, RawValue(trial, n, step));
      if (!v || v->values.empty()) continue;
      double pct = InactiveUnitsPercent(*v, active, inactivity_);
      if (pct > layer_) {
        return Fire(rule_,
                    n + " has " + Num(pct) + "% " + (relu_ ? "dead" : "saturated") +
                        " units (active in < " + Num(inactivity_) +
                        "% of the batch) > threshold_layer " + Num(layer_) + "%",
                    step,
                    {{"tensors", {{{"name", n}, {"inactive_percent", JsonNum(pct)}}}},
                     {"threshold_inactivity", inactivity_},
                     {"threshold_layer", layer_}});
      }
    }
    return std::optional<Finding>();
  }

 private:
  std::string rule_;
  Selection sel_;
  bool relu_;
  Range range_;
  double inactivity_, layer_;
};

// ---- TensorVariance ----
class TensorVariance : public RuleLogic {
 public:
  TensorVariance(Selection sel, std::optional<double> max, std::optional<double> min)
      : sel_(std::move(sel)), max_(max), min_(min) {}
  Result<std::optional<Finding>> Evaluate(Trial& trial, int64_t step) override {
    TY_ASSIGN_OR_RETURN(std::vector<std::string> names, sel_.Names(trial, step));
    for (const auto& n : names) {
      TY_ASSIGN_OR_RETURN(std::optional<double> v, Reduction(trial, n, step, "variance", false));
      if (!v) continue;
      if (max_ && *v > *max_) {
        return Fire(
            "TensorVariance", n + " variance " + Num(*v) + " > max_threshold " + Num(*max_), step,
            {{"tensors", {{{"name", n}, {"variance", JsonNum(*v)}}}}, {"max_threshold", *max_}});
      }
      if (min_ && *v < *min_) {
        return Fire(
            "TensorVariance", n + " variance " + Num(*v) + " < min_threshold " + Num(*min_), step,
            {{"tensors", {{{"name", n}, {"variance", JsonNum(*v)}}}}, {"min_threshold", *min_}});
      }
    }
    return std::optional<Finding>();
  }

 private:
  Selection sel_;
  std::optional<double> max_, min_;
};

// ---- AllZero ----
class AllZero : public RuleLogic {
 public:
  AllZero(Selection sel, double threshold) : sel_(std::move(sel)), threshold_(threshold) {}
  Result<std::optional<Finding>> Evaluate(Trial& trial, int64_t step) override {
    TY_ASSIGN_OR_RETURN(std::vector<std::string> names, sel_.Names(trial, step));
    for (const auto& n : names) {
      TY_ASSIGN_OR_RETURN(std::optional<NDArray> v, RawValue(trial, n, step));
      if (!v || v->values.empty()) continue;
      size_t zeros = std::count(v->values.begin(), v->values.end(), 0.0);
      double pct = 100.0 * static_cast<double>(zeros) / static_cast<double>(v->values.size());
      if (pct >= threshold_) {
        return Fire(
            "AllZero", n + " is " + Num(pct) + "% zeros (>= threshold " + Num(threshold_) + "%)",
            step, {{"tensors", {{{"name", n}, {"zero_percent", pct}}}}, {"threshold", threshold_}});
      }
    }
    return std::optional<Finding>();
  }

 private:
  Selection sel_;
  double threshold_;
};

bool AllClose(const NDArray& a, const NDArray& b, double rtol, double atol, bool equal_nan) {
  if (a.shape != b.shape || a.values.size() != b.values.size()) return false;
  for (size_t i = 0; i < a.values.size(); ++i) {
    double x = a.values[i], y = b.values[i];
    if (std::isnan(x) || std::isnan(y)) {
      if (!(equal_nan && std::isnan(x) && std::isnan(y))) return false;
      continue;
    }
    if (std::isinf(x) || std::isinf(y)) {
      if (x != y) return false;
      continue;
    }
    if (std::fabs(x - y) > atol + rtol * std::fabs(y)) return false;
  }
  return true;
}

// ---- UnchangedTensor ----
class UnchangedTensor : public RuleLogic {
 public:
  UnchangedTensor(Selection sel, int64_t num_steps, double rtol, double atol, bool equal_nan)
      : sel_(std::move(sel)),
        num_steps_(num_steps),
        rtol_(rtol),
        atol_(atol),
        equal_nan_(equal_nan) {}
  Result<std::optional<Finding>> Evaluate(Trial& trial, int64_t step) override {
    TY_ASSIGN_OR_RETURN(std::vector<std::string> names, sel_.Names(trial, step));
    std::vector<std::pair<std::string, NDArray>> now;
    for (const auto& n : names) {
      TY_ASSIGN_OR_RETURN(std::optional<NDArray> v, RawValue(trial, n, step));
      if (v) now.emplace_back(n, std::move(*v));
    }
    std::optional<Finding> out;
    for (auto& [n, v] : now) {
      auto& hist = history_[n];
      hist.emplace_back(step, std::move(v));
      while (static_cast<int64_t>(hist.size()) > num_steps_) hist.pop_front();
      if (out || static_cast<int64_t>(hist.size()) < num_steps_) continue;
      bool same = true;
      for (size_t i = 1; same && i < hist.size(); ++i) {
        same = AllClose(hist[i].second, hist[i - 1].second, rtol_, atol_, equal_nan_);
      }
      if (same) {
        nlohmann::json steps = nlohmann::json::array();
        for (const auto& h : hist) steps.push_back(h.first);
        out = Fire("UnchangedTensor",
                   n + " did not change over its last " + std::to_string(num_steps_) +
                       " saved steps (rtol " + Num(rtol_) + ", atol " + Num(atol_) + ")",
                   step, {{"tensors", {{{"name", n}, {"steps", steps}}}}});
      }
    }
    return out;
  }

 private:
  Selection sel_;
  int64_t num_steps_;
  double rtol_, atol_;
  bool equal_nan_;
  std::map<std::string, std::deque<std::pair<int64_t, NDArray>>> history_;
};

// ---- ClassImbalance ----
class ClassImbalance : public RuleLogic {
 public:
  ClassImbalance(double imbalance, double misprediction, int64_t samples, bool argmax,
                 std::string labels, std::string predictions)
      : imbalance_(imbalance),
        misprediction_(misprediction),
        samples_(samples),
        argmax_(argmax),
        labels_(std::move(labels)),
        predictions_(std::move(predictions)) {}
  Result<std::optional<Finding>> Evaluate(Trial& trial, int64_t step) override {
    Selection ls, ps;
    ls.regexes = {labels_};
    ps.regexes = {predictions_};
    TY_ASSIGN_OR_RETURN(std::vector<std::string> lnames, ls.Names(trial, step));
    TY_ASSIGN_OR_RETURN(std::vector<std::string> pnames, ps.Names(trial, step));
    if (lnames.empty()) return std::optional<Finding>();
    TY_ASSIGN_OR_RETURN(std::optional<NDArray> labels, RawValue(trial, lnames.front(), step));
    if (!labels) return std::optional<Finding>();
    std::optional<NDArray> preds;
    if (!pnames.empty()) {
      TY_ASSIGN_OR_RETURN(preds, RawValue(trial, pnames.front(), step));
    }
    std::vector<int64_t> p;
    if (preds) {
      if (argmax_ && preds->shape.size() >= 2 && preds->shape.back() > 0) {
        auto classes = static_cast<size_t>(preds->shape.back());
        for (size_t i = 0; i + classes <= preds->values.size(); i += classes) {
          p.push_back(
              std::max_element(preds->values.begin() + i, preds->values.begin() + i + classes) -
              (preds->values.begin() + i));
        }
      } else {
        for (double v : preds->values) p.push_back(std::llround(v));
      }
      if (p.size() != labels->values.size()) p.clear();  // not comparable: count labels only
    }
    for (size_t i = 0; i < labels->values.size(); ++i) {
      int64_t c = std::llround(labels->values[i]);
      ++count_[c];
      ++total_;
      if (!p.empty()) {
        ++predicted_[c];
        if (p[i] != c) ++wrong_[c];
      }
    }
    if (total_ < samples_ || count_.empty()) return std::optional<Finding>();
    auto [mn, mx] = std::minmax_element(count_.begin(), count_.end(),
                                        [](auto& a, auto& b) { return a.second < b.second; });
    double ratio = static_cast<double>(mx->second) / static_cast<double>(mn->second);
    nlohmann::json counts = nlohmann::json::object();
    for (auto& [c, n] : count_) counts[std::to_string(c)] = n;
    if (ratio > imbalance_) {
      return Fire(
          "ClassImbalance",
          "class " + std::to_string(mx->first) + " has " + std::to_string(mx->second) +
              " samples, class " + std::to_string(mn->first) + " " + std::to_string(mn->second) +
              ": ratio " + Num(ratio) + " > threshold_imbalance " + Num(imbalance_),
          step, {{"label_counts", counts}, {"ratio", ratio}, {"tensors", {lnames.front()}}});
    }
    for (auto& [c, n] : predicted_) {
      double frac = static_cast<double>(wrong_[c]) / static_cast<double>(n);
      if (frac > misprediction_) {
        return Fire("ClassImbalance",
                    "class " + std::to_string(c) + " is mispredicted in " + Num(100 * frac) +
                        "% of its samples (> threshold_misprediction " + Num(misprediction_) + ")",
                    step,
                    {{"label_counts", counts}, {"class", c}, {"mispredicted_fraction", frac}});
      }
    }
    return std::optional<Finding>();
  }

 private:
  double imbalance_, misprediction_;
  int64_t samples_;
  bool argmax_;
  std::string labels_, predictions_;
  std::map<int64_t, int64_t> count_, predicted_, wrong_;
  int64_t total_ = 0;
};

// ---- WeightUpdateRatio ----
class WeightUpdateRatio : public RuleLogic {
 public:
  WeightUpdateRatio(std::optional<int64_t> num_steps, double large, double small, double eps)
      : num_steps_(num_steps), large_(large), small_(small), eps_(eps) {}
  Result<std::optional<Finding>> Evaluate(Trial& trial, int64_t step) override {
    auto ms = trial.mode_step(step);
    // Weights do not change outside training; an EVAL step would read as a zero update.
    if (ms && ms->first != Mode::kTrain && ms->first != Mode::kGlobal) {
      return std::optional<Finding>();
    }
    Selection sel;
    sel.collections = {"weights"};
    sel.all_by_default = false;
    if (!trial.collections().count("weights")) sel.regexes = {"^(?!gradient).*weight"};
    TY_ASSIGN_OR_RETURN(std::vector<std::string> names, sel.Names(trial, step));
    std::vector<std::pair<std::string, NDArray>> now;
    for (const auto& n : names) {
      TY_ASSIGN_OR_RETURN(std::optional<NDArray> v, RawValue(trial, n, step));
      if (v) now.emplace_back(n, std::move(*v));
    }
    std::optional<Finding> out;
    for (auto& [n, w] : now) {
      auto it = prev_.find(n);
      if (!out && it != prev_.end() && (!num_steps_ || it->second.first >= step - *num_steps_) &&
          it->second.second.values.size() == w.values.size()) {
        const auto& pw = it->second.second.values;
        double du = 0, dw = 0;
        for (size_t i = 0; i < pw.size(); ++i) {
          du += (w.values[i] - pw[i]) * (w.values[i] - pw[i]);
          dw += pw[i] * pw[i];
        }
        double ratio = std::sqrt(du) / (std::sqrt(dw) + eps_);
        if (ratio > large_ || ratio < small_) {
          out = Fire(
              "WeightUpdateRatio",
              n + " update/weight ratio " + Num(ratio) + " since step " +
                  std::to_string(it->second.first) +
                  (ratio > large_ ? " > large_threshold " + Num(large_)
                                  : " < small_threshold " + Num(small_)),
              step,
              {{"tensors",
                {{{"name", n}, {"ratio", JsonNum(ratio)}, {"previous_step", it->second.first}}}}});
        }
      }
      prev_[n] = {step, std::move(w)};
    }
    return out;
  }

 private:
  std::optional<int64_t> num_steps_;
  double large_, small_, eps_;
  std::map<std::string, std::pair<int64_t, NDArray>> prev_;
};

// ---- StalledTrainingRule ----
class StalledTraining : public RuleLogic {
 public:
  StalledTraining(const Clock* clock, std::chrono::seconds threshold, bool stop, std::string prefix)
      : clock_(clock),
        threshold_(threshold),
        stop_(stop),
        prefix_(std::move(prefix)),
        last_progress_(clock->Now()) {}
  Result<std::optional<Finding>> Evaluate(Trial&, int64_t) override {
    return std::optional<Finding>();
  }
  std::optional<Finding> Poll(Trial& trial, bool ended) override {
    if (ended) return std::nullopt;
    uint64_t seen = trial.stats().index_files_read;
    TimePoint now = clock_->Now();
    if (seen != seen_) {
      seen_ = seen;
      last_progress_ = now;
      return std::nullopt;
    }
    auto idle = std::chrono::duration_cast<std::chrono::seconds>(now - last_progress_);
    if (idle <= threshold_) return std::nullopt;
    auto last = trial.all_steps();
    int64_t step = last.empty() ? 0 : last.back();
    nlohmann::json f = {{"seconds_without_new_step", idle.count()},
                        {"threshold", threshold_.count()},
                        {"stop_training_on_fire", stop_}};
    if (!prefix_.empty()) f["training_job_name_prefix"] = prefix_;
    return Fire("StalledTrainingRule",
                "no new step was saved for " + std::to_string(idle.count()) + " s (threshold " +
                    std::to_string(threshold_.count()) + " s); last step",
                step, std::move(f));
  }

 private:
  const Clock* clock_;
  std::chrono::seconds threshold_;
  bool stop_;
  std::string prefix_;
  TimePoint last_progress_;
  uint64_t seen_ = 0;
};

// ---- SimilarAcrossRuns ----
class SimilarAcrossRuns : public RuleLogic {
 public:
  SimilarAcrossRuns(Selection sel, std::string other_uri, EvaluationContext ctx)
      : sel_(std::move(sel)), other_uri_(std::move(other_uri)), ctx_(std::move(ctx)) {}
  Result<std::optional<Finding>> Evaluate(Trial& trial, int64_t step) override {
    if (!other_) {
      if (!ctx_.open_store) return FailedPrecondition("no store to read the other trial");
      TY_ASSIGN_OR_RETURN(storage::ObjectStore * store, ctx_.open_store(other_uri_));
      other_ = Trial::Open(store, other_uri_);
    }
    StepState st = other_->step_state(step);
    if (st == StepState::kNotYetAvailable) {
      Status s = other_->Refresh();
      if (!s.ok()) return s.WithPrefix("other trial " + other_uri_);
      st = other_->step_state(step);
    }
    if (st == StepState::kNotYetAvailable) return Unavailable("other trial has not reached step");
    if (st == StepState::kUnavailable) return std::optional<Finding>();
    other_->DropTensorsBefore(step);  // read in step order, like the base trial
    TY_ASSIGN_OR_RETURN(std::vector<std::string> names, sel_.Names(trial, step));
    for (const auto& n : names) {
      if (!other_->has_tensor(n)) continue;
      TY_ASSIGN_OR_RETURN(std::optional<NDArray> a, RawValue(trial, n, step));
      TY_ASSIGN_OR_RETURN(std::optional<NDArray> b, RawValue(*other_, n, step));
      if (!a || !b) continue;
      if (!AllClose(*a, *b, 1e-5, 1e-8, true)) {
        double maxdiff = 0;
        for (size_t i = 0; i < std::min(a->values.size(), b->values.size()); ++i) {
          maxdiff = std::max(maxdiff, std::fabs(a->values[i] - b->values[i]));
        }
        return Fire(
            "SimilarAcrossRuns",
            n + " differs from the other trial's (" + other_uri_ + ") by up to " + Num(maxdiff),
            step,
            {{"tensors", {{{"name", n}, {"max_abs_difference", JsonNum(maxdiff)}}}},
             {"other_trial", other_uri_}});
      }
    }
    return std::optional<Finding>();
  }

 private:
  Selection sel_;
  std::string other_uri_;
  EvaluationContext ctx_;
  std::unique_ptr<Trial> other_;
};

using Factory =
    std::function<Result<std::unique_ptr<RuleLogic>>(Params&, const EvaluationContext&)>;

template <typename T>
Result<std::unique_ptr<RuleLogic>> Made(std::unique_ptr<T> p) {
  return std::unique_ptr<RuleLogic>(std::move(p));
}

const std::map<std::string, Factory>& Registry() {
  static const auto* r = new std::map<std::string, Factory>{
      {"VanishingGradient",
       [](Params& p, const EvaluationContext&) -> Result<std::unique_ptr<RuleLogic>> {
         TY_ASSIGN_OR_RETURN(double t, p.Double("threshold", 1e-7));
         return Made(std::make_unique<VanishingGradient>(t));
       }},
      {"ExplodingTensor",
       [](Params& p, const EvaluationContext&) -> Result<std::unique_ptr<RuleLogic>> {
         TY_ASSIGN_OR_RETURN(Selection s, ParseSelection(p));
         TY_ASSIGN_OR_RETURN(bool only_nan, p.Bool("only_nan", false));
         return Made(std::make_unique<ExplodingTensor>(std::move(s), only_nan));
       }},
      {"LossNotDecreasing",
       [](Params& p, const EvaluationContext&) -> Result<std::unique_ptr<RuleLogic>> {
         TY_ASSIGN_OR_RETURN(Selection s, ParseSelection(p, false));
         TY_ASSIGN_OR_RETURN(bool use_losses, p.Bool("use_losses_collection", true));
         TY_ASSIGN_OR_RETURN(int64_t n, p.Int("num_steps", 10, 1, 1'000'000'000));
         TY_ASSIGN_OR_RETURN(double diff, p.Double("diff_percent", 0.1, 0, 100));
         TY_ASSIGN_OR_RETURN(double inc, p.Double("increase_threshold_percent", 5, 0, 100));
         std::optional<Mode> mode;
         if (auto m = p.Raw("mode")) {
           std::string u = *m;
           std::transform(u.begin(), u.end(), u.begin(), ::toupper);
           if (u.rfind("MODES.", 0) == 0) u = u.substr(6);
           mode = ParseModeName(u);
           if (!mode) {
             return InvalidArgument("Invalid value '" + *m +
                                    "' for parameter 'mode' of rule LossNotDecreasing: expected "
                                    "TRAIN, EVAL, PREDICT or GLOBAL.");
           }
         }
         return Made(
             std::make_unique<LossNotDecreasing>(std::move(s), use_losses, n, diff, inc, mode));
       }},
      {"Overfit",
       [](Params& p, const EvaluationContext&) -> Result<std::unique_ptr<RuleLogic>> {
         TY_ASSIGN_OR_RETURN(std::optional<std::string> re, p.Regex("tensor_regex"));
         TY_ASSIGN_OR_RETURN(int64_t start, p.Int("start_step", 0, 0, INT64_MAX));
         TY_ASSIGN_OR_RETURN(int64_t patience, p.Int("patience", 1, 1, 1'000'000'000));
         TY_ASSIGN_OR_RETURN(double ratio, p.Double("ratio_threshold", 0.1));
         return Made(std::make_unique<Overfit>(LossSelection(re), start, patience, ratio));
       }},
      {"Overtraining",
       [](Params& p, const EvaluationContext&) -> Result<std::unique_ptr<RuleLogic>> {
         TY_ASSIGN_OR_RETURN(int64_t pt, p.Int("patience_train", 5, 1, 1'000'000'000));
         TY_ASSIGN_OR_RETURN(int64_t pv, p.Int("patience_validation", 10, 1, 1'000'000'000));
         TY_ASSIGN_OR_RETURN(double delta, p.Double("delta", 0.01, 0));
         return Made(std::make_unique<Overtraining>(pt, pv, delta));
       }},
      {"PoorWeightInitialization",
       [](Params& p, const EvaluationContext&) -> Result<std::unique_ptr<RuleLogic>> {
         TY_ASSIGN_OR_RETURN(std::optional<std::string> re, p.Regex("activation_inputs_regex"));
         TY_ASSIGN_OR_RETURN(double t, p.Double("threshold", 10.0, 0));
         TY_ASSIGN_OR_RETURN(double range, p.Double("distribution_range", 0.001, 0));
         TY_ASSIGN_OR_RETURN(int64_t patience, p.Int("patience", 5, 1, 1'000'000'000));
         TY_ASSIGN_OR_RETURN(int64_t steps, p.Int("steps", 10, 1, 1'000'000'000));
         return Made(std::make_unique<PoorWeightInitialization>(re.value_or(".*relu_input"), t,
                                                                range, patience, steps));
       }},
      {"SaturatedActivation",
       [](Params& p, const EvaluationContext&) -> Result<std::unique_ptr<RuleLogic>> {
         TY_ASSIGN_OR_RETURN(Selection s, ParseSelection(p));
         if (s.collections.empty() && s.regexes.empty())
           s.regexes = {".*tanh_input|.*sigmoid_input"};
         InactiveUnits::Range range{};
         TY_ASSIGN_OR_RETURN(range.tanh_min, p.Double("threshold_tanh_min", -9.4999));
         TY_ASSIGN_OR_RETURN(range.tanh_max, p.Double("threshold_tanh_max", 9.4999));
         TY_ASSIGN_OR_RETURN(range.sigmoid_min, p.Double("threshold_sigmoid_min", -23));
         TY_ASSIGN_OR_RETURN(range.sigmoid_max, p.Double("threshold_sigmoid_max", 16.99999));
         TY_ASSIGN_OR_RETURN(double ti, p.Double("threshold_inactivity", 1.0, 0, 100));
         TY_ASSIGN_OR_RETURN(double tl, p.Double("threshold_layer", 50.0, 0, 100));
         return Made(std::make_unique<InactiveUnits>("SaturatedActivation", std::move(s), false,
                                                     range, ti, tl));
       }},
      {"DeadRelu",
       [](Params& p, const EvaluationContext&) -> Result<std::unique_ptr<RuleLogic>> {
         TY_ASSIGN_OR_RETURN(std::optional<std::string> re, p.Regex("tensor_regex"));
         Selection s;
         s.regexes = {re.value_or(".*relu_output")};
         TY_ASSIGN_OR_RETURN(double ti, p.Double("threshold_inactivity", 1.0, 0, 100));
         TY_ASSIGN_OR_RETURN(double tl, p.Double("threshold_layer", 50.0, 0, 100));
         return Made(std::make_unique<InactiveUnits>("DeadRelu", std::move(s), true,
                                                     InactiveUnits::Range{}, ti, tl));
       }},
      {"TensorVariance",
       [](Params& p, const EvaluationContext&) -> Result<std::unique_ptr<RuleLogic>> {
         TY_ASSIGN_OR_RETURN(Selection s, ParseSelection(p));
         TY_ASSIGN_OR_RETURN(std::optional<double> mx, p.OptDouble("max_threshold"));
         TY_ASSIGN_OR_RETURN(std::optional<double> mn, p.OptDouble("min_threshold"));
         if (!mx && !mn) {
           return InvalidArgument(
               "Rule TensorVariance needs parameter 'max_threshold' or 'min_threshold'.");
         }
         return Made(std::make_unique<TensorVariance>(std::move(s), mx, mn));
       }},
      {"AllZero",
       [](Params& p, const EvaluationContext&) -> Result<std::unique_ptr<RuleLogic>> {
         TY_ASSIGN_OR_RETURN(Selection s, ParseSelection(p));
         if (s.collections.empty() && s.regexes.empty()) {
           return InvalidArgument(
               "Rule AllZero needs parameter 'collection_names' or 'tensor_regex'.");
         }
         TY_ASSIGN_OR_RETURN(double t, p.Double("threshold", 100, 0, 100));
         return Made(std::make_unique<AllZero>(std::move(s), t));
       }},
      {"UnchangedTensor",
       [](Params& p, const EvaluationContext&) -> Result<std::unique_ptr<RuleLogic>> {
         TY_ASSIGN_OR_RETURN(Selection s, ParseSelection(p));
         TY_ASSIGN_OR_RETURN(int64_t n, p.Int("num_steps", 3, 2, 1000));
         TY_ASSIGN_OR_RETURN(double rtol, p.Double("rtol", 1e-05, 0));
         TY_ASSIGN_OR_RETURN(double atol, p.Double("atol", 1e-08, 0));
         TY_ASSIGN_OR_RETURN(bool eq, p.Bool("equal_nan", false));
         return Made(std::make_unique<UnchangedTensor>(std::move(s), n, rtol, atol, eq));
       }},
      {"ClassImbalance",
       [](Params& p, const EvaluationContext&) -> Result<std::unique_ptr<RuleLogic>> {
         TY_ASSIGN_OR_RETURN(double ti, p.Double("threshold_imbalance", 10, 0));
         TY_ASSIGN_OR_RETURN(double tm, p.Double("threshold_misprediction", 0.7, 0, 1));
         TY_ASSIGN_OR_RETURN(int64_t samples, p.Int("samples", 500, 1, INT64_MAX));
         TY_ASSIGN_OR_RETURN(bool argmax, p.Bool("argmax", false));
         TY_ASSIGN_OR_RETURN(std::optional<std::string> lr, p.Regex("labels_regex"));
         TY_ASSIGN_OR_RETURN(std::optional<std::string> pr, p.Regex("predictions_regex"));
         return Made(std::make_unique<ClassImbalance>(
             ti, tm, samples, argmax, lr.value_or(".*labels"), pr.value_or(".*predictions")));
       }},
      {"WeightUpdateRatio",
       [](Params& p, const EvaluationContext&) -> Result<std::unique_ptr<RuleLogic>> {
         TY_ASSIGN_OR_RETURN(std::optional<int64_t> n, p.OptInt("num_steps", 1, INT64_MAX));
         TY_ASSIGN_OR_RETURN(double large, p.Double("large_threshold", 10.0, 0));
         TY_ASSIGN_OR_RETURN(double small, p.Double("small_threshold", 0.00000001, 0));
         TY_ASSIGN_OR_RETURN(double eps, p.Double("epsilon", 0.000000001, 0));
         return Made(std::make_unique<WeightUpdateRatio>(n, large, small, eps));
       }},
      {"StalledTrainingRule",
       [](Params& p, const EvaluationContext& ctx) -> Result<std::unique_ptr<RuleLogic>> {
         TY_ASSIGN_OR_RETURN(int64_t t, p.Int("threshold", 1800, 1, 365LL * 24 * 3600));
         TY_ASSIGN_OR_RETURN(bool stop, p.Bool("stop_training_on_fire", false));
         std::string prefix = p.Raw("training_job_name_prefix").value_or("");
         const Clock* clock = ctx.clock ? ctx.clock : SystemClock::Default();
         return Made(
             std::make_unique<StalledTraining>(clock, std::chrono::seconds(t), stop, prefix));
       }},
      {"SimilarAcrossRuns",
       [](Params& p, const EvaluationContext& ctx) -> Result<std::unique_ptr<RuleLogic>> {
         TY_ASSIGN_OR_RETURN(Selection s, ParseSelection(p));
         if (ctx.other_trials.empty()) {
           return InvalidArgument(
               "Rule SimilarAcrossRuns needs parameter 'other_trials' (other_trial_0).");
         }
         return Made(
             std::make_unique<SimilarAcrossRuns>(std::move(s), ctx.other_trials.front(), ctx));
       }},
  };
  return *r;
}

// Drives one RuleLogic over a job's trial (see Evaluation in evaluation.h).
class DebugRuleEvaluation : public Evaluation {
 public:
  DebugRuleEvaluation(std::string rule, std::unique_ptr<RuleLogic> logic, EvaluationContext ctx)
      : rule_(std::move(rule)), logic_(std::move(logic)), ctx_(std::move(ctx)) {}

  EvaluationResult Advance(const AdvanceLimits& limits) override {
    if (result_.status != RuleStatus::kInProgress) return result_;
    const auto deadline = std::chrono::steady_clock::now() + limits.budget;
    if (!trial_) {
      if (!ctx_.open_store) return Failed("no store can read " + ctx_.trial_uri);
      Result<storage::ObjectStore*> store = ctx_.open_store(ctx_.trial_uri);
      if (!store.ok())
        return Failed("cannot read " + ctx_.trial_uri + ": " + store.status().message());
      TrialOptions o;
      o.max_tensor_bytes = limits.max_tensor_bytes;
      trial_ = Trial::Open(*store, ctx_.trial_uri, o);
    }
    if (limits.training_ended) trial_->AssumeEnded();
    Status s = trial_->Refresh();
    if (!s.ok()) {
      if (s.code() == StatusCode::kUnavailable) {
        result_.details = "Waiting for the store: " + s.message();
        return result_;
      }
      return Failed(s.message());
    }
    const bool ended = trial_->loaded_all_steps();
    if (!trial_->all_collections_loaded()) {
      if (ended) {
        return Failed(
            "ClientError: No debugging data was saved by the training job. Check that the "
            "debugger hook was configured correctly before starting the training job. "
            "Exception: Training job has ended. All the collection files could not be loaded");
      }
      result_.details = "Waiting for the training job to save debugging data.";
      return result_;
    }
    if (auto f = logic_->Poll(*trial_, ended)) {
      return Fired(*f, f->findings.value("step", result_.last_step.value_or(0)));
    }
    // Every step listed now and not yet evaluated keeps the time it was first listed.
    const auto listed_at = std::chrono::steady_clock::now();
    for (int64_t step : trial_->steps()) {
      if (!result_.last_step || step > *result_.last_step) first_listed_.emplace(step, listed_at);
    }
    bool held_back = false;
    int evaluated_now = 0;
    bool out_of_time = false;
    for (int64_t step : trial_->steps()) {
      if (result_.last_step && step <= *result_.last_step) continue;
      if (limits.through_step && step > *limits.through_step) {
        held_back = true;
        break;
      }
      if (!ended && limits.listing_grace.count() > 0 &&
          listed_at - first_listed_.at(step) < limits.listing_grace) {
        held_back = true;
        break;
      }
      // At least one step per call, so a tiny budget still makes progress.
      if (evaluated_now > 0 && std::chrono::steady_clock::now() >= deadline) {
        out_of_time = true;
        break;
      }
      Result<std::optional<Finding>> r = logic_->Evaluate(*trial_, step);
      ++evaluated_now;
      if (!r.ok()) {
        if (r.status().code() == StatusCode::kUnavailable) return result_;
        return Failed("cannot evaluate step " + std::to_string(step) + ": " + r.status().message());
      }
      ++result_.steps_evaluated;
      result_.last_step = step;
      if (*r) return Fired(**r, step);
    }
    // Rules keep what they need of earlier steps themselves.
    if (result_.last_step) {
      trial_->DropTensorsBefore(*result_.last_step);
      first_listed_.erase(first_listed_.begin(), first_listed_.upper_bound(*result_.last_step));
    }
    if (ended && !held_back && !out_of_time) {
      Result<std::optional<Finding>> r = logic_->Finish(*trial_);
      if (!r.ok()) return Failed(r.status().message());
      if (*r) return Fired(**r, result_.last_step.value_or(0));
      result_.status = RuleStatus::kNoIssuesFound;
      result_.details =
          "No issues found in " + std::to_string(result_.steps_evaluated) + " evaluated steps" +
          (result_.last_step ? " (last step " + std::to_string(*result_.last_step) + ")" : "") +
          ".";
    } else {
      result_.details =
          std::to_string(result_.steps_evaluated) + " steps evaluated" +
          (result_.last_step ? ", through step " + std::to_string(*result_.last_step) : "") + ".";
    }
    return result_;
  }

  Trial* trial() { return trial_.get(); }

 private:
  // Tensor and file names come from the job's output: invalid UTF-8 would make a later dump()
  // of the status or findings throw, so it is replaced here.
  static nlohmann::json Utf8Safe(const nlohmann::json& j) {
    return nlohmann::json::parse(j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace),
                                 nullptr, false);
  }
  static std::string Details(const std::string& s) {
    nlohmann::json safe = Utf8Safe(nlohmann::json(s.substr(0, 1024)));
    return safe.is_string() ? safe.get<std::string>() : "";
  }
  EvaluationResult Failed(const std::string& why) {
    result_.status = RuleStatus::kError;
    result_.details = Details(why.rfind("ClientError", 0) == 0 ? why : rule_ + ": " + why);
    return result_;
  }
  EvaluationResult Fired(const Finding& f, int64_t step) {
    result_.status = RuleStatus::kIssuesFound;
    result_.details = Details(f.details);
    result_.fired_step = step;
    result_.findings = Utf8Safe(f.findings);
    return result_;
  }

  std::string rule_;
  std::unique_ptr<RuleLogic> logic_;
  EvaluationContext ctx_;
  std::unique_ptr<Trial> trial_;
  // When each not yet evaluated step was first listed (AdvanceLimits::listing_grace); holds at
  // most the steps listed since the last one evaluated.
  std::map<int64_t, std::chrono::steady_clock::time_point> first_listed_;
  EvaluationResult result_;
};

}  // namespace

const std::vector<std::string>& BuiltInRuleNames() {
  static const auto* names = [] {
    auto* v = new std::vector<std::string>();
    for (const auto& [n, f] : Registry()) v->push_back(n);
    return v;
  }();
  return *names;
}

Result<std::unique_ptr<RuleLogic>> MakeRuleLogic(const std::string& name,
                                                 const std::map<std::string, std::string>& params,
                                                 const EvaluationContext& context) {
  auto it = Registry().find(name);
  if (it == Registry().end()) {
    std::string all;
    for (const auto& n : BuiltInRuleNames()) all += (all.empty() ? "" : ", ") + n;
    return InvalidArgument("Unknown rule '" + name + "'. Built-in rules: " + all + ".");
  }
  Params p(name, params);
  TY_ASSIGN_OR_RETURN(std::unique_ptr<RuleLogic> logic, it->second(p, context));
  TY_RETURN_IF_ERROR(p.CheckUnused());
  return logic;
}

Result<std::unique_ptr<Evaluation>> MakeDebugRuleEvaluation(const model::RuleSpec& rule,
                                                            const EvaluationContext& context) {
  TY_ASSIGN_OR_RETURN(std::unique_ptr<RuleLogic> logic,
                      MakeRuleLogic(rule.rule, rule.parameters, context));
  return std::unique_ptr<Evaluation>(
      std::make_unique<DebugRuleEvaluation>(rule.rule, std::move(logic), context));
}

}  // namespace ty::debugger
