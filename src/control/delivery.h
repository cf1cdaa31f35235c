// Delivery: the seam through which event rules (events/), alarms (telemetry/) and topics hand a
// payload to a target named by its ARN — a Lambda function, an SNS topic or a CloudWatch Logs
// group — without depending on the module that owns the target. Each owner implements
// Deliverer for its service and registers it with the server's DeliveryRouter.
//
// Thread contract: Deliver may be called from any thread, concurrently; it may block for as
// long as the target takes (a function's Timeout), so it is never called on the controller's
// loop thread: callers run it on their own delivery workers.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <string_view>

namespace ty::control {

struct Delivery {
  std::string account;     // the account that owns the rule, alarm or topic sending it
  std::string target_arn;  // arn:aws:<service>:<region>:<account>:<resource>
  std::string payload;     // the JSON text the target receives as its event
  // Who sends it, as AWS names the service principal (a function's resource policy may be
  // checked against it): "events.amazonaws.com", "sns.amazonaws.com",
  // "lambda.alarms.cloudwatch.amazonaws.com".
  std::string principal;
  std::string source_arn;  // the rule, topic or alarm that sends it
  std::string subject;     // SNS only: the message's Subject (alarms set it)
};

struct DeliveryResult {
  enum class Kind {
    kDelivered,  // the target took it (a function's handler returned)
    kRetry,      // failed in a way a later try may not (function error, timeout, busy)
    kFailed,     // will never succeed: no such target, another account's, not permitted
  };
  Kind kind = Kind::kDelivered;
  std::string error;  // why, when not delivered (shown in dead letters and alarm history)

  static DeliveryResult Delivered() { return {}; }
  static DeliveryResult Retry(std::string why) { return {Kind::kRetry, std::move(why)}; }
  static DeliveryResult Failed(std::string why) { return {Kind::kFailed, std::move(why)}; }
  bool ok() const { return kind == Kind::kDelivered; }
};

class Deliverer {
 public:
  virtual ~Deliverer() = default;
  // Hands `d` to its target and waits for the outcome. A target in another account than
  // d.account is kFailed (accounts do not trust each other).
  virtual DeliveryResult Deliver(const Delivery& d) = 0;
};

// The ARN's service field ("lambda", "sns", "logs"); empty when `arn` is not an ARN.
inline std::string_view ArnService(std::string_view arn) {
  if (arn.substr(0, 4) != "arn:") return {};
  size_t p = arn.find(':', 4);  // after the partition
  if (p == std::string_view::npos) return {};
  size_t q = arn.find(':', p + 1);
  if (q == std::string_view::npos) return {};
  return arn.substr(p + 1, q - p - 1);
}

// The ARN's account field; empty when absent.
inline std::string_view ArnAccount(std::string_view arn) {
  size_t pos = 0;
  for (int field = 0; field < 4; ++field) {  // arn:partition:service:region:
    pos = arn.find(':', pos);
    if (pos == std::string_view::npos) return {};
    ++pos;
  }
  size_t end = arn.find(':', pos);
  if (end == std::string_view::npos) return {};
  return arn.substr(pos, end - pos);
}

// Routes a delivery to the Deliverer registered for its target's service.
// Register before use; Deliver is then thread-safe (the map is read-only).
class DeliveryRouter : public Deliverer {
 public:
  // `deliverer` (not owned) outlives the router.
  void Register(std::string service, Deliverer* deliverer) {
    by_service_[std::move(service)] = deliverer;
  }
  DeliveryResult Deliver(const Delivery& d) override {
    if (ArnAccount(d.target_arn) != d.account) {
      return DeliveryResult::Failed("target " + d.target_arn + " is not in account " + d.account);
    }
    auto it = by_service_.find(std::string(ArnService(d.target_arn)));
    if (it == by_service_.end()) {
      return DeliveryResult::Failed("unsupported target " + d.target_arn);
    }
    return it->second->Deliver(d);
  }

 private:
  std::map<std::string, Deliverer*, std::less<>> by_service_;
};

}  // namespace ty::control
