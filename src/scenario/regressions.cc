#include "capcheck/regressions.h"

#include <algorithm>
#include <filesystem>

#include "capcheck/detail/files.h"
#include "capcheck/errors.h"
#include "capcheck/token.h"

namespace capcheck {

namespace fs = std::filesystem;

namespace {

// The line append_regression writes after a line an interrupted append left
// without its newline; the reader skips the line above it (with a warning).
constexpr std::string_view kTornMarker =
    "# (the line above was cut short by an interrupted write; it is not replayed)";

std::string where(const fs::path& path, int line) {
  return path.string() + ":" + std::to_string(line);
}

// The regular files of `directory`, sorted; a name starting with '.' skipped.
std::vector<fs::path> token_files(const std::string& directory) {
  std::error_code error;
  if (!fs::is_directory(directory, error)) {
    throw UsageError("--regressions: " + quote_input(directory, 200) + " is not a directory" +
                     (error ? " (" + error.message() + ")" : ""));
  }
  std::vector<fs::path> files;
  fs::directory_iterator it(directory, error), end;
  for (; !error && it != end; it.increment(error)) {
    const fs::path& path = it->path();
    if (path.filename().string().rfind('.', 0) == 0) continue;
    std::error_code kind_error;
    const bool regular = it->is_regular_file(kind_error);
    if (kind_error) {
      // A symlink loop or a dangling link: say which entry, do not skip it
      // silently (it may be the file of regressions the user meant).
      throw UsageError("--regressions: cannot read " + quote_input(path.string(), 200) + ": " +
                       kind_error.message());
    }
    if (regular) files.push_back(path);
  }
  if (error) {
    throw UsageError("--regressions: cannot list " + quote_input(directory, 200) + ": " +
                     error.message());
  }
  std::sort(files.begin(), files.end());
  return files;
}

std::string trimmed(std::string_view line) {
  const auto first = line.find_first_not_of(" \t\r");
  if (first == std::string_view::npos) return "";
  const auto last = line.find_last_not_of(" \t\r");
  return std::string(line.substr(first, last - first + 1));
}

}  // namespace

std::vector<RegressionEntry> load_regressions(const std::string& directory,
                                              std::vector<std::string>* warnings) {
  std::vector<RegressionEntry> entries;
  for (const auto& path : token_files(directory)) {
    const std::string text =
        detail::read_bounded_file(path.string(), kRegressionFileBytesMax, "--regressions");
    std::vector<std::string_view> lines;
    for (std::size_t begin = 0; begin < text.size();) {
      const std::size_t newline = text.find('\n', begin);
      const std::size_t end = newline == std::string::npos ? text.size() : newline;
      lines.push_back(std::string_view(text).substr(begin, end - begin));
      begin = end + 1;
    }
    const bool ends_with_newline = text.empty() || text.back() == '\n';
    std::string comment;
    for (std::size_t i = 0; i < lines.size(); ++i) {
      const int number = static_cast<int>(i) + 1;
      const std::string line = trimmed(lines[i]);
      if (line.empty()) {
        comment.clear();
        continue;
      }
      if (line[0] == '#') {
        comment += (comment.empty() ? "" : " ") + line.substr(1);
        continue;
      }
      try {
        if (is_run_token(line)) {
          entries.push_back(RegressionEntry{Scenario{}, path.string(), number, comment,
                                            run_token_subject(line), true, line});
        } else {
          DecodedToken decoded = decode_subject_token(line);
          entries.push_back(RegressionEntry{std::move(decoded.scenario), path.string(), number,
                                            comment, std::move(decoded.subject),
                                            decoded.names_subject, ""});
        }
      } catch (const UsageError& e) {
        const bool torn_tail = i + 1 == lines.size() && !ends_with_newline;
        const bool marked_torn = i + 1 < lines.size() && trimmed(lines[i + 1]) == kTornMarker;
        if (!torn_tail && !marked_torn) throw UsageError(where(path, number) + ": " + e.what());
        // What an interrupted append left: report it and keep the rest.
        if (warnings) {
          warnings->push_back(where(path, number) +
                              ": skipped a line cut short by an interrupted write (" + e.what() +
                              ")");
        }
      }
      comment.clear();
    }
  }
  return entries;
}

std::string append_regression(const std::string& directory, const Scenario& scenario,
                              const SubjectRef& subject,
                              const std::string& comment) {
  std::error_code error;
  fs::create_directories(directory, error);
  if (error) {
    throw OutputError("--regressions: cannot create " + quote_input(directory, 200) + ": " +
                      error.message());
  }
  const fs::path path = fs::path(directory) / kRegressionFileName;
  std::string one_line_comment = comment;
  std::replace(one_line_comment.begin(), one_line_comment.end(), '\n', ' ');
  try {
    detail::append_whole(path.string(), "# " + one_line_comment + '\n' + encode_token(scenario, subject) + '\n',
                         kTornMarker);
  } catch (const OutputError& e) {
    throw OutputError(std::string("--regressions: ") + e.what());
  }
  return path.string();
}

}  // namespace capcheck
