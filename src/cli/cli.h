// The capcheck command line as a function: the capcheck executable and the
// Python module (`python3 -m capcheck`, docs/python.md) both run it.
#pragma once

namespace capcheck::cli {

/// Parses and runs one command line (argv[0] is the program's name); returns
/// the exit code (errors.h ExitCode). `install_signals`: SIGINT/SIGTERM/SIGPIPE
/// stop the run at a case boundary (common.cc); a host with its own handlers
/// (Python) passes false and calls request_stop() itself.
int run_cli(int argc, char** argv, bool install_signals);

/// Stops a running command at the next case boundary.
void request_stop();

}  // namespace capcheck::cli
