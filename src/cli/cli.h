// The `trainyard` command table: parses argv and runs one subcommand.
#pragma once

#include <ostream>

namespace ty::cli {

// Runs the trainyard command line; returns the process exit code.
int Run(int argc, char** argv, std::ostream& out, std::ostream& err);

}  // namespace ty::cli
