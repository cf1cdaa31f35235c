// LambdaDeliverer: the "lambda" control::Deliverer. Rules, topics and alarms hand it a payload
// for a function ARN; it runs one invocation (the asynchronous kind: the sender waits, but no
// caller sees the result) and reports the outcome:
//   Delivered  the handler returned;
//   Retry      the handler raised, timed out, crashed, or no worker was free;
//   Failed     no such function, another account's, or its resource policy does not let the
//              sender invoke it (PolicyAllows).
//
// Thread contract: Deliver may be called from any number of threads at once.
#pragma once

#include <string>

#include "control/delivery.h"
#include "functions/function_store.h"
#include "functions/runtime.h"

namespace ty::functions {

// Whether the resource policy of `fn` lets `principal` (a service principal such as
// "events.amazonaws.com") invoke it on behalf of `source_arn` in `source_account`.
// A function without any statement accepts every sender of its own account: Trainyard's
// rules, topics and alarms are trusted like the account's own callers (AWS would refuse them
// until AddPermission; see the README). Once a function has statements, one of them must
// allow lambda:InvokeFunction (or lambda:*) for that principal (or "*"), with its SourceArn
// (ArnLike: '*' and '?' wildcards) and SourceAccount conditions met.
bool PolicyAllows(const FunctionConfig& fn, const std::string& principal,
                  const std::string& source_arn, const std::string& source_account);

// ArnLike / StringLike matching: '*' any run of characters, '?' one character.
bool WildcardMatch(const std::string& pattern, const std::string& text);

class LambdaDeliverer final : public control::Deliverer {
 public:
  // REQUIRES: store and runtime outlive the deliverer.
  LambdaDeliverer(FunctionStore* store, FunctionRuntime* runtime)
      : store_(store), runtime_(runtime) {}
  control::DeliveryResult Deliver(const control::Delivery& d) override;

 private:
  FunctionStore* const store_;
  FunctionRuntime* const runtime_;
};

}  // namespace ty::functions
