#include "events/logs_deliverer.h"

#include "common/json.h"

namespace ty::events {

using control::DeliveryResult;

namespace {

constexpr size_t kMaxEventBytes = 256 * 1024 - 26;  // CloudWatch counts 26 bytes per event

// "log-group:<name>" or "log-group:<name>:*" after the account field.
std::string GroupName(const std::string& arn) {
  const std::string marker = ":log-group:";
  size_t p = arn.find(marker);
  if (p == std::string::npos) return "";
  std::string name = arn.substr(p + marker.size());
  if (name.size() >= 2 && name.compare(name.size() - 2, 2, ":*") == 0) name.resize(name.size() - 2);
  return name;
}

std::string StreamName(const std::string& payload) {
  auto j = ParseJson(payload);
  if (j.ok() && j->is_object()) {
    auto it = j->find("id");
    if (it != j->end() && it->is_string() && !it->get<std::string>().empty() &&
        it->get<std::string>().size() <= 512 &&
        it->get<std::string>().find_first_of(":*") == std::string::npos) {
      return it->get<std::string>();
    }
  }
  return "events";
}

DeliveryResult FromStatus(const Status& s) {
  if (s.code() == StatusCode::kUnavailable) return DeliveryResult::Retry(s.message());
  return DeliveryResult::Failed(s.message());
}

}  // namespace

DeliveryResult LogsDeliverer::Deliver(const control::Delivery& d) {
  const std::string group_name = GroupName(d.target_arn);
  if (group_name.empty()) return DeliveryResult::Failed("not a log group ARN: " + d.target_arn);
  if (d.payload.size() > kMaxEventBytes) {
    return DeliveryResult::Failed("the event is larger than a log event may be (256 KiB)");
  }
  auto group = store_->GetLogGroup(d.account, group_name);
  if (!group.ok()) {
    if (group.status().code() == StatusCode::kNotFound) {
      return DeliveryResult::Failed("log group " + group_name + " does not exist");
    }
    return FromStatus(group.status());
  }
  const int64_t now_ms = ToEpochMillis(clock_->Now());
  const std::string stream_name = StreamName(d.payload);
  auto stream = store_->GetLogStream(group->id, stream_name);
  if (!stream.ok() && stream.status().code() == StatusCode::kNotFound) {
    stream = store_->CreateLogStream(group->id, stream_name, now_ms);
    if (!stream.ok() && stream.status().code() == StatusCode::kAlreadyExists) {
      stream = store_->GetLogStream(group->id, stream_name);  // another worker made it
    }
  }
  if (!stream.ok()) return FromStatus(stream.status());
  Status s = store_->PutStreamEvents(stream->id, {{now_ms, d.payload}}, now_ms);
  if (!s.ok()) return FromStatus(s);
  return DeliveryResult::Delivered();
}

}  // namespace ty::events
