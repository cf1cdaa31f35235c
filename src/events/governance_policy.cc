#include "events/governance_policy.h"

#include <cctype>
#include <cmath>
#include <set>

namespace ty::events {
namespace {

using nlohmann::json;

// The longest span a policy takes (28 days, as SageMaker's longest MaxWaitTimeInSeconds).
constexpr int64_t kMaxSpanSeconds = 2419200;

// "idle_stop" -> "IdleStop" in API documents.
std::string Key(const char* snake, PolicyKeys keys) {
  if (keys == PolicyKeys::kConfig) return snake;
  std::string out;
  bool upper = true;
  for (const char* p = snake; *p != '\0'; ++p) {
    if (*p == '_') {
      upper = true;
      continue;
    }
    out += upper ? static_cast<char>(std::toupper(static_cast<unsigned char>(*p))) : *p;
    upper = false;
  }
  return out;
}

// Reads one mapping of a document: every key must be one of `known`.
class Reader {
 public:
  Reader(const json& doc, std::string where, PolicyKeys keys)
      : doc_(doc), where_(std::move(where)), keys_(keys) {}

  Status CheckKeys(std::initializer_list<const char*> known) const {
    if (!doc_.is_object()) return Error("", "a mapping");
    std::set<std::string> names;
    for (const char* k : known) names.insert(Key(k, keys_));
    for (const auto& [k, v] : doc_.items()) {
      if (names.count(k) == 0) {
        std::string list;
        for (const auto& n : names) list += (list.empty() ? "" : ", ") + n;
        return InvalidArgument(Path(k) + " is not a governance setting (" + list + ")");
      }
    }
    return Status::Ok();
  }
  const json* Find(const char* snake) const {
    auto it = doc_.find(Key(snake, keys_));
    return it == doc_.end() || it->is_null() ? nullptr : &*it;
  }
  Status Seconds(const char* snake, int64_t min, std::chrono::seconds* out) const {
    int64_t n = 0;
    TY_RETURN_IF_ERROR(Int(snake, min, kMaxSpanSeconds, &n));
    *out = std::chrono::seconds(n);
    return Status::Ok();
  }
  Status Int(const char* snake, int64_t min, int64_t max, int64_t* out) const {
    const json* v = Find(snake);
    if (v == nullptr) return Status::Ok();
    std::string want = "a whole number from " + std::to_string(min) + " to " + std::to_string(max);
    if (v->is_number_integer()) {
      *out = v->get<int64_t>();
    } else if (v->is_number_float() && std::nearbyint(v->get<double>()) == v->get<double>() &&
               std::fabs(v->get<double>()) < 1e15) {
      *out = static_cast<int64_t>(v->get<double>());
    } else {
      return Error(snake, want);
    }
    if (*out < min || *out > max) return Error(snake, want);
    return Status::Ok();
  }
  Status Number(const char* snake, double min, double max, double* out) const {
    const json* v = Find(snake);
    if (v == nullptr) return Status::Ok();
    if (!v->is_number() || !std::isfinite(v->get<double>()) || v->get<double>() < min ||
        v->get<double>() > max) {
      return Error(snake, "a number from " + Fmt(min) + " to " + Fmt(max));
    }
    *out = v->get<double>();
    return Status::Ok();
  }
  Status Bool(const char* snake, bool* out) const {
    const json* v = Find(snake);
    if (v == nullptr) return Status::Ok();
    if (!v->is_boolean()) return Error(snake, "true or false");
    *out = v->get<bool>();
    return Status::Ok();
  }
  Status String(const char* snake, std::string* out) const {
    const json* v = Find(snake);
    if (v == nullptr) return Status::Ok();
    if (!v->is_string() || v->get<std::string>().empty() ||
        v->get<std::string>().size() > kMaxPolicyStringBytes) {
      return Error(snake, "a string of 1 to " + std::to_string(kMaxPolicyStringBytes) + " bytes");
    }
    *out = v->get<std::string>();
    return Status::Ok();
  }
  Status Strings(const char* snake, std::vector<std::string>* out) const {
    const json* v = Find(snake);
    if (v == nullptr) return Status::Ok();
    std::string want = "a list of at most " + std::to_string(kMaxPolicyListEntries) +
                       " distinct strings of 1 to " + std::to_string(kMaxPolicyStringBytes) +
                       " bytes";
    if (!v->is_array() || v->size() > kMaxPolicyListEntries) return Error(snake, want);
    std::set<std::string> seen;
    for (const auto& e : *v) {
      if (!e.is_string() || e.get<std::string>().empty() ||
          e.get<std::string>().size() > kMaxPolicyStringBytes ||
          !seen.insert(e.get<std::string>()).second) {
        return Error(snake, want);
      }
      out->push_back(e.get<std::string>());
    }
    return Status::Ok();
  }
  Reader Sub(const char* snake) const {
    static const json kNull;
    const json* v = Find(snake);
    return Reader(v == nullptr ? kNull : *v, Path(Key(snake, keys_)), keys_);
  }
  bool present() const { return !doc_.is_null(); }
  std::string Path(const std::string& key) const {
    return where_.empty() ? key : key.empty() ? where_ : where_ + "." + key;
  }
  Status Error(const char* snake, const std::string& want) const {
    std::string path = Path(snake[0] == '\0' ? "" : Key(snake, keys_));
    return InvalidArgument((path.empty() ? "the governance document" : path) + " must be " + want);
  }

 private:
  static std::string Fmt(double x) {
    std::string s = std::to_string(x);
    while (!s.empty() && s.back() == '0') s.pop_back();
    if (!s.empty() && s.back() == '.') s.pop_back();
    return s;
  }
  const json& doc_;
  std::string where_;
  PolicyKeys keys_;
};

}  // namespace

bool GovernancePolicies::empty() const {
  return !required_tags && allowed_instance_types.empty() && !max_instance_count && !max_runtime &&
         !idle_stop && !auto_resume && !spot_fallback;
}

const char* Name(IdleStopPolicy::Metric m) {
  return m == IdleStopPolicy::Metric::kGpu ? "GPUUtilization" : "CPUUtilization";
}

const char* Name(RequiredTagsPolicy::Mode m) {
  return m == RequiredTagsPolicy::Mode::kRefuse ? "refuse" : "stop";
}

Result<GovernancePolicies> ParsePolicies(const json& doc, PolicyKeys keys) {
  GovernancePolicies p;
  if (doc.is_null()) return p;
  Reader r(doc, "", keys);
  TY_RETURN_IF_ERROR(
      r.CheckKeys({"required_tags", "allowed_instance_types", "max_instance_count",
                   "max_runtime_seconds", "idle_stop", "auto_resume", "spot_fallback"}));
  if (Reader t = r.Sub("required_tags"); t.present()) {
    TY_RETURN_IF_ERROR(t.CheckKeys({"keys", "action"}));
    RequiredTagsPolicy rt;
    TY_RETURN_IF_ERROR(t.Strings("keys", &rt.keys));
    if (rt.keys.empty()) return t.Error("keys", "a non-empty list of tag keys");
    std::string action = "stop";
    TY_RETURN_IF_ERROR(t.String("action", &action));
    if (action == "refuse") {
      rt.mode = RequiredTagsPolicy::Mode::kRefuse;
    } else if (action != "stop") {
      return t.Error("action", "stop or refuse");
    }
    p.required_tags = std::move(rt);
  }
  TY_RETURN_IF_ERROR(r.Strings("allowed_instance_types", &p.allowed_instance_types));
  int64_t n = 0;
  if (r.Find("max_instance_count") != nullptr) {
    TY_RETURN_IF_ERROR(r.Int("max_instance_count", 1, 1000, &n));
    p.max_instance_count = static_cast<int>(n);
  }
  if (r.Find("max_runtime_seconds") != nullptr) {
    std::chrono::seconds s{0};
    TY_RETURN_IF_ERROR(r.Seconds("max_runtime_seconds", 1, &s));
    p.max_runtime = s;
  }
  if (Reader t = r.Sub("idle_stop"); t.present()) {
    TY_RETURN_IF_ERROR(t.CheckKeys({"metric", "threshold_percent", "duration_seconds"}));
    IdleStopPolicy idle;
    std::string metric = "CPUUtilization";
    TY_RETURN_IF_ERROR(t.String("metric", &metric));
    if (metric == "GPUUtilization") {
      idle.metric = IdleStopPolicy::Metric::kGpu;
    } else if (metric != "CPUUtilization") {
      return t.Error("metric", "CPUUtilization or GPUUtilization");
    }
    TY_RETURN_IF_ERROR(t.Number("threshold_percent", 0, 100000, &idle.threshold_percent));
    TY_RETURN_IF_ERROR(t.Seconds("duration_seconds", 1, &idle.duration));
    p.idle_stop = idle;
  }
  if (Reader t = r.Sub("auto_resume"); t.present()) {
    TY_RETURN_IF_ERROR(t.CheckKeys({"min_runtime_seconds", "max_resumes", "on_algorithm_error"}));
    AutoResumePolicy ar;
    TY_RETURN_IF_ERROR(t.Seconds("min_runtime_seconds", 0, &ar.min_runtime));
    n = ar.max_resumes;
    TY_RETURN_IF_ERROR(t.Int("max_resumes", 1, 100, &n));
    ar.max_resumes = static_cast<int>(n);
    TY_RETURN_IF_ERROR(t.Bool("on_algorithm_error", &ar.on_algorithm_error));
    p.auto_resume = ar;
  }
  if (Reader t = r.Sub("spot_fallback"); t.present()) {
    TY_RETURN_IF_ERROR(t.CheckKeys({"after_interruptions", "max_capacity_wait_seconds"}));
    SpotFallbackPolicy sf;
    n = 0;
    TY_RETURN_IF_ERROR(t.Int("after_interruptions", 1, 1000, &n));
    sf.after_interruptions = static_cast<int>(n);
    if (t.Find("max_capacity_wait_seconds") != nullptr) {
      std::chrono::seconds s{0};
      TY_RETURN_IF_ERROR(t.Seconds("max_capacity_wait_seconds", 1, &s));
      sf.max_capacity_wait = s;
    }
    if (sf.after_interruptions == 0 && !sf.max_capacity_wait) {
      return t.Error("", "after_interruptions or max_capacity_wait_seconds (or both)");
    }
    p.spot_fallback = sf;
  }
  return p;
}

json RenderPolicies(const GovernancePolicies& p, PolicyKeys keys) {
  auto k = [keys](const char* snake) { return Key(snake, keys); };
  json out = json::object();
  if (p.required_tags) {
    out[k("required_tags")] = {{k("keys"), p.required_tags->keys},
                               {k("action"), Name(p.required_tags->mode)}};
  }
  if (!p.allowed_instance_types.empty()) {
    out[k("allowed_instance_types")] = p.allowed_instance_types;
  }
  if (p.max_instance_count) out[k("max_instance_count")] = *p.max_instance_count;
  if (p.max_runtime) out[k("max_runtime_seconds")] = p.max_runtime->count();
  if (p.idle_stop) {
    out[k("idle_stop")] = {{k("metric"), Name(p.idle_stop->metric)},
                           {k("threshold_percent"), p.idle_stop->threshold_percent},
                           {k("duration_seconds"), p.idle_stop->duration.count()}};
  }
  if (p.auto_resume) {
    out[k("auto_resume")] = {{k("min_runtime_seconds"), p.auto_resume->min_runtime.count()},
                             {k("max_resumes"), p.auto_resume->max_resumes},
                             {k("on_algorithm_error"), p.auto_resume->on_algorithm_error}};
  }
  if (p.spot_fallback) {
    json sf = json::object();
    if (p.spot_fallback->after_interruptions > 0) {
      sf[k("after_interruptions")] = p.spot_fallback->after_interruptions;
    }
    if (p.spot_fallback->max_capacity_wait) {
      sf[k("max_capacity_wait_seconds")] = p.spot_fallback->max_capacity_wait->count();
    }
    out[k("spot_fallback")] = std::move(sf);
  }
  return out;
}

}  // namespace ty::events
