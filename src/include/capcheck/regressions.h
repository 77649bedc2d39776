// Regression files: one token per line, `#` comments, kept in a directory the
// user chooses and replayed before new cases (docs/reproduce.md).
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "capcheck/scenario.h"
#include "capcheck/token.h"

namespace capcheck {

/// The file `append_regression` writes in a regression directory.
inline constexpr const char* kRegressionFileName = "capcheck-regressions.tokens";

struct RegressionEntry {
  Scenario scenario;
  std::string file;
  int line = 0;
  /// The `#` comment lines right above the token, joined.
  std::string comment;
  /// The subject the token names (a `cc1:` token: none, `names_subject` false).
  SubjectRef subject;
  bool names_subject = false;
  /// A `ccr1:` line: the run token (its framing and subject checked; the
  /// engine runner decodes the rest), `scenario` unused.
  std::string run_token;
};

/// True when `entry` replays under `subject`: its token names that subject
/// (whatever its options), or names none (`cc1:`) and `subject` reads the
/// built-in TensorRT-LLM scenarios (`builtin_family`).
inline bool replays_under(const RegressionEntry& entry, const std::string& subject,
                          bool builtin_family) {
  return entry.names_subject ? entry.subject.name == subject : builtin_family;
}

/// Largest regression file read, in bytes (the limit is named when exceeded).
inline constexpr std::size_t kRegressionFileBytesMax = 64u << 20;

/// Every token (scenario or run) of every regular file in `directory` (sorted by name; files
/// starting with '.' skipped). Throws UsageError naming file:line for a line
/// that is neither blank, a `#` comment, nor a valid token; for a directory
/// that does not exist; for an entry that cannot be inspected (a symlink
/// loop) or read (an I/O error is never taken for an empty file); and for a
/// file above kRegressionFileBytesMax. A line cut short by an interrupted
/// append (the file's last line without its newline, or a line that a later
/// append marked as torn) is skipped and named in `warnings`, so the rest of
/// the file still replays.
std::vector<RegressionEntry> load_regressions(const std::string& directory,
                                              std::vector<std::string>* warnings = nullptr);

/// Appends `# comment` and the token of `scenario` on `subject` to directory/kRegressionFileName
/// (creating both if needed) as one locked write, so concurrent runs never
/// interleave entries; returns the file's path. Throws OutputError, leaving the
/// file as it was, when the entry cannot be written whole (a full disk).
std::string append_regression(const std::string& directory, const Scenario& scenario,
                              const SubjectRef& subject, const std::string& comment);

}  // namespace capcheck
