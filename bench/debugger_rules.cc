// Debugger rule throughput and lag (driven by bench/debugger_rules.py, which writes the trial
// with the real smdebug hook and runs smdebug's own trial reader on the same files).
//
//   debugger_rules eval TRIAL_DIR [REPEATS]
//     VanishingGradient + ExplodingTensor (collection_names=gradients) over every step of the
//     finished trial, each repeat with a fresh evaluation (the trial's index files are read
//     again). Prints one JSON line: tensors evaluated, seconds (best repeat), tensors/s.
//   debugger_rules lag TRIAL_DIR SCRATCH_DIR
//     Lands the trial's steps one at a time in SCRATCH_DIR (event file, then index file renamed
//     into place, as the hook does) and advances a VanishingGradient evaluation right after each
//     landing; prints the landing-to-evaluated lag (p50, p99, max) in ms. No poll interval is
//     included (the rule manager's own poll period adds to it).
// (built by `ninja -C build debugger_rules`)
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "debugger/evaluation.h"
#include "storage/file_object_store.h"

namespace {

namespace fs = std::filesystem;
using Steady = std::chrono::steady_clock;
using ty::debugger::AdvanceLimits;
using ty::debugger::EvaluationContext;
using ty::debugger::EvaluationResult;
using ty::debugger::RuleStatus;

std::unique_ptr<ty::debugger::Evaluation> Make(ty::storage::ObjectStore* store,
                                               const std::string& uri, const std::string& rule,
                                               std::map<std::string, std::string> params) {
  ty::model::RuleSpec spec;
  spec.rule = rule;
  spec.parameters = std::move(params);
  EvaluationContext ctx;
  ctx.trial_uri = uri;
  ctx.open_store = [store](const std::string&) -> ty::Result<ty::storage::ObjectStore*> {
    return store;
  };
  auto e = ty::debugger::MakeDebugRuleEvaluation(spec, ctx);
  if (!e.ok()) {
    std::fprintf(stderr, "%s\n", e.status().message().c_str());
    std::exit(1);
  }
  return std::move(*e);
}

EvaluationResult RunToEnd(ty::debugger::Evaluation& e) {
  AdvanceLimits limits;
  limits.training_ended = true;
  limits.budget = std::chrono::hours(1);
  EvaluationResult r;
  while (r.status == RuleStatus::kInProgress) r = e.Advance(limits);
  return r;
}

size_t CountGradients(const fs::path& trial) {
  // Tensors per step: gradient entries in the first index file.
  for (const auto& d : fs::recursive_directory_iterator(trial / "index")) {
    if (d.path().extension() != ".json") continue;
    FILE* f = std::fopen(d.path().c_str(), "r");
    std::string text;
    char buf[65536];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, n);
    std::fclose(f);
    size_t count = 0, pos = 0;
    while ((pos = text.find("\"tensorname\": \"gradient/", pos)) != std::string::npos) {
      ++count;
      ++pos;
    }
    return count;
  }
  return 0;
}

int Eval(const std::string& dir, int repeats) {
  const std::string root = fs::absolute(dir).string();
  ty::storage::FileObjectStore store({root});
  double best = 1e100, best_cpu = 1e100;
  EvaluationResult vg, ex;
  auto cpu_now = [] {
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec +
           (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
  };
  for (int i = 0; i < repeats; ++i) {
    auto t0 = Steady::now();
    double c0 = cpu_now();
    auto a = Make(&store, "file://" + root, "VanishingGradient", {});
    vg = RunToEnd(*a);
    auto b = Make(&store, "file://" + root, "ExplodingTensor", {{"collection_names", "gradients"}});
    ex = RunToEnd(*b);
    best = std::min(best, std::chrono::duration<double>(Steady::now() - t0).count());
    best_cpu = std::min(best_cpu, cpu_now() - c0);
  }
  size_t per_step = CountGradients(root);
  uint64_t tensors = (vg.steps_evaluated + ex.steps_evaluated) * per_step;
  std::printf(
      "{\"steps\": %lld, \"gradients_per_step\": %zu, \"tensors\": %llu, \"seconds\": %.6f, "
      "\"cpu_seconds\": %.6f, \"tensors_per_s\": %.1f, \"vanishing\": \"%s\", "
      "\"exploding\": \"%s\"}\n",
      static_cast<long long>(vg.steps_evaluated), per_step,
      static_cast<unsigned long long>(tensors), best, best_cpu, static_cast<double>(tensors) / best,
      ty::debugger::Name(vg.status), ty::debugger::Name(ex.status));
  return 0;
}

int Lag(const std::string& src_dir, const std::string& scratch) {
  const fs::path src = fs::absolute(src_dir);
  const fs::path dst = fs::absolute(scratch) / "lag_trial";
  fs::remove_all(dst);
  fs::create_directories(dst);
  fs::copy(src / "collections", dst / "collections", fs::copy_options::recursive);
  std::vector<fs::path> index;
  for (const auto& d : fs::recursive_directory_iterator(src / "index")) {
    if (d.path().extension() == ".json") index.push_back(fs::relative(d.path(), src));
  }
  std::sort(index.begin(), index.end());
  ty::storage::FileObjectStore store({dst.string()});
  auto e = Make(&store, "file://" + dst.string(), "VanishingGradient", {});
  std::vector<double> lags;
  AdvanceLimits limits;
  for (const fs::path& rel : index) {
    const std::string base = rel.stem().string();  // <STEP12>_<worker>
    const std::string step12 = base.substr(0, 12);
    const fs::path ev = fs::path("events") / step12 / (base + ".tfevents");
    fs::create_directories((dst / ev).parent_path());
    fs::copy_file(src / ev, dst / ev, fs::copy_options::overwrite_existing);
    fs::create_directories((dst / rel).parent_path());
    fs::copy_file(src / rel, dst / (rel.string() + ".tmp"), fs::copy_options::overwrite_existing);
    const int64_t step = std::stoll(step12);
    auto t0 = Steady::now();
    fs::rename(dst / (rel.string() + ".tmp"), dst / rel);
    EvaluationResult r;
    do {
      r = e->Advance(limits);
    } while (r.status == RuleStatus::kInProgress && r.last_step.value_or(-1) < step);
    lags.push_back(std::chrono::duration<double, std::milli>(Steady::now() - t0).count());
  }
  std::sort(lags.begin(), lags.end());
  auto pct = [&](double p) {
    return lags[std::min(lags.size() - 1, static_cast<size_t>(p * lags.size()))];
  };
  std::printf(
      "{\"steps\": %zu, \"lag_ms_p50\": %.3f, \"lag_ms_p99\": %.3f, \"lag_ms_max\": %.3f}\n",
      lags.size(), pct(0.5), pct(0.99), lags.back());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 3 && std::string(argv[1]) == "eval") {
    return Eval(argv[2], argc > 3 ? std::atoi(argv[3]) : 3);
  }
  if (argc >= 4 && std::string(argv[1]) == "lag") return Lag(argv[2], argv[3]);
  std::fprintf(stderr, "usage: debugger_rules eval TRIAL_DIR [REPEATS] | lag TRIAL_DIR SCRATCH\n");
  return 2;
}
