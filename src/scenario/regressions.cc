#include "capcheck/regressions.h"

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "capcheck/errors.h"
#include "capcheck/token.h"

namespace capcheck {

namespace fs = std::filesystem;

std::vector<RegressionEntry> load_regressions(const std::string& directory) {
  std::error_code error;
  if (!fs::is_directory(directory, error)) {
    throw UsageError("--regressions: '" + directory + "' is not a directory");
  }
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(directory, error)) {
    if (entry.is_regular_file() && entry.path().filename().string().rfind('.', 0) != 0) {
      files.push_back(entry.path());
    }
  }
  if (error) throw UsageError("--regressions: cannot list '" + directory + "': " + error.message());
  std::sort(files.begin(), files.end());

  std::vector<RegressionEntry> entries;
  for (const auto& path : files) {
    std::ifstream in(path);
    if (!in) throw UsageError("--regressions: cannot read '" + path.string() + "'");
    std::string line, comment;
    for (int number = 1; std::getline(in, line); ++number) {
      const auto first = line.find_first_not_of(" \t\r");
      if (first == std::string::npos) {
        comment.clear();
        continue;
      }
      const auto last = line.find_last_not_of(" \t\r");
      const std::string text = line.substr(first, last - first + 1);
      if (text[0] == '#') {
        comment += (comment.empty() ? "" : " ") + text.substr(1);
        continue;
      }
      try {
        entries.push_back(RegressionEntry{decode_token(text), path.string(), number, comment});
      } catch (const UsageError& e) {
        throw UsageError(path.string() + ":" + std::to_string(number) + ": " + e.what());
      }
      comment.clear();
    }
  }
  return entries;
}

std::string append_regression(const std::string& directory, const Scenario& scenario,
                              const std::string& comment) {
  std::error_code error;
  fs::create_directories(directory, error);
  if (error) {
    throw UsageError("--regressions: cannot create '" + directory + "': " + error.message());
  }
  const fs::path path = fs::path(directory) / kRegressionFileName;
  std::ofstream out(path, std::ios::app);
  if (!out) throw UsageError("--regressions: cannot write '" + path.string() + "'");
  out << "# " << comment << '\n' << encode_token(scenario) << '\n';
  return path.string();
}

}  // namespace capcheck
