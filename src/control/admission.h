// AdmissionCheck: the seam through which policies refuse a job at CreateTrainingJob, before it
// is accepted (built-in governance: required tags, allowed instance types, limits). The
// SageMaker service asks it after the request has been validated against the model and parsed.
//
// Thread contract: Admit may be called from any number of HTTP workers at once; it must not
// block on the controller's loop.
#pragma once

#include <string>
#include <vector>

#include "common/status.h"
#include "model/training_job.h"
#include "store/store.h"

namespace ty::control {

class AdmissionCheck {
 public:
  virtual ~AdmissionCheck() = default;
  // Ok to accept the job; kInvalidArgument (the API's ValidationException) with a message that
  // names what to change, to refuse it.
  virtual Status Admit(const std::string& account, const model::JobSpec& spec,
                       const std::vector<store::Tag>& tags) const = 0;
};

}  // namespace ty::control
