// `trainyard storage ...`: client-side object storage commands modelled on `aws s3` (sync, ls,
// cp, mb). They talk to the store directly (no Trainyard server): s3:// through the S3 settings
// the AWS CLI would use (AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID /
// AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_PROFILE, ~/.aws files; --endpoint-url and --profile
// override), file:// anywhere on this machine.
//
//   trainyard storage sync SRC DST [--delete] [--dryrun] [--quiet] [--workers N]
//   trainyard storage ls URI [--recursive]
//   trainyard storage cp SRC DST [--quiet]
//   trainyard storage mb s3://BUCKET
//
// Exit codes: 0 success; 1 an operation failed (some files did not move, the store refused,
// nothing listed); 2 bad arguments.
#pragma once

#include <CLI/CLI.hpp>
#include <ostream>
#include <string>

namespace ty::cli {

// Registers the `storage` command group on `app` (in the constructor) and runs the chosen
// subcommand after parsing. Not copyable: CLI11 keeps pointers to the members.
class StorageCommands {
 public:
  explicit StorageCommands(CLI::App& app);
  StorageCommands(const StorageCommands&) = delete;
  StorageCommands& operator=(const StorageCommands&) = delete;

  // True when argv chose `storage` (valid after app.parse).
  bool chosen() const;
  // Runs the chosen subcommand; returns the exit code.
  int Run(std::ostream& out, std::ostream& err);

 private:
  CLI::App* group_ = nullptr;
  CLI::App* sync_ = nullptr;
  CLI::App* ls_ = nullptr;
  CLI::App* cp_ = nullptr;
  CLI::App* mb_ = nullptr;
  std::string endpoint_url_;
  std::string profile_;
  std::string src_;
  std::string dst_;
  bool delete_ = false;
  bool dry_run_ = false;
  bool quiet_ = false;
  bool recursive_ = false;
  int workers_ = 16;
};

}  // namespace ty::cli
