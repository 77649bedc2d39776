// Regression files: one token per line, `#` comments, kept in a directory the
// user chooses and replayed before new cases (docs/reproduce.md).
#pragma once

#include <string>
#include <vector>

#include "capcheck/scenario.h"

namespace capcheck {

/// The file `append_regression` writes in a regression directory.
inline constexpr const char* kRegressionFileName = "capcheck-regressions.tokens";

struct RegressionEntry {
  Scenario scenario;
  std::string file;
  int line = 0;
  /// The `#` comment lines right above the token, joined.
  std::string comment;
};

/// Every token of every regular file in `directory` (sorted by name; files
/// starting with '.' skipped). Throws UsageError naming file:line for a line
/// that is neither blank, a `#` comment, nor a valid token, and for a
/// directory that does not exist.
std::vector<RegressionEntry> load_regressions(const std::string& directory);

/// Appends `# comment` and the token of `scenario` to directory/kRegressionFileName
/// (creating both if needed); returns the file's path.
std::string append_regression(const std::string& directory, const Scenario& scenario,
                              const std::string& comment);

}  // namespace capcheck
