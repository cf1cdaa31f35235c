#include "functions/lambda_deliverer.h"

#include <vector>

namespace ty::functions {

bool WildcardMatch(const std::string& pattern, const std::string& text) {
  // Iterative glob with one backtrack point: linear in practice, no recursion.
  size_t p = 0, t = 0, star = std::string::npos, mark = 0;
  while (t < text.size()) {
    if (p < pattern.size() && (pattern[p] == '?' || pattern[p] == text[t])) {
      ++p;
      ++t;
    } else if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      mark = t;
    } else if (star != std::string::npos) {
      p = star + 1;
      t = ++mark;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

bool PolicyAllows(const FunctionConfig& fn, const std::string& principal,
                  const std::string& source_arn, const std::string& source_account) {
  if (fn.policy.empty()) return true;
  for (const PolicyStatement& s : fn.policy) {
    if (s.action != "lambda:InvokeFunction" && s.action != "lambda:*" && s.action != "*") {
      continue;
    }
    if (s.principal != "*" && s.principal != principal) continue;
    if (!s.source_arn.empty() && !WildcardMatch(s.source_arn, source_arn)) continue;
    if (!s.source_account.empty() && s.source_account != source_account) continue;
    return true;
  }
  return false;
}

control::DeliveryResult LambdaDeliverer::Deliver(const control::Delivery& d) {
  using control::DeliveryResult;
  // arn:aws:lambda:<region>:<account>:function:<name>[:qualifier]
  std::vector<std::string> parts;
  size_t pos = 0;
  while (parts.size() < 8) {
    size_t colon = d.target_arn.find(':', pos);
    parts.push_back(d.target_arn.substr(pos, colon - pos));
    if (colon == std::string::npos) break;
    pos = colon + 1;
  }
  if (parts.size() < 7 || parts[0] != "arn" || parts[2] != "lambda" || parts[5] != "function") {
    return DeliveryResult::Failed("not a Lambda function ARN: " + d.target_arn);
  }
  if (parts.size() == 8 && parts[7] != "$LATEST") {
    return DeliveryResult::Failed("function versions and aliases are not supported: " +
                                  d.target_arn);
  }
  const std::string& account = parts[4];
  if (account != d.account) {
    return DeliveryResult::Failed("function " + d.target_arn + " is not in account " + d.account);
  }
  auto fn = store_->Get(account, parts[6]);
  if (!fn) return DeliveryResult::Failed("Function not found: " + d.target_arn);
  if (!PolicyAllows(*fn, d.principal, d.source_arn, d.account)) {
    return DeliveryResult::Failed("the resource policy of " + d.target_arn + " does not allow " +
                                  d.principal + " to invoke it for " + d.source_arn);
  }
  InvokeRequest req;
  req.payload = d.payload;
  InvokeResult r = runtime_->Invoke(*fn, store_->CodeDir(*fn), req);
  if (r.busy) return DeliveryResult::Retry("no free worker for " + d.target_arn);
  if (!r.function_error.empty()) {
    return DeliveryResult::Retry("the function failed (" + r.request_id +
                                 "): " + r.payload.substr(0, 512));
  }
  return DeliveryResult::Delivered();
}

}  // namespace ty::functions
