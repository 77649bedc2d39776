// Per-case logging of the CLI: the in-flight token (written before each case
// runs, so a crash or hang leaves a reproduction), a watchdog that reports a
// hung case as a failure, and JSON lines (one per case).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "capcheck/report.h"
#include "capcheck/runner.h"

namespace capcheck::cli {

/// The file that holds the token of the case in flight: a shared mapping, so
/// what is written survives the process dying mid-case, at the cost of one
/// memcpy per case. Created new (O_EXCL|O_NOFOLLOW): capcheck never writes
/// into, truncates or deletes a file it did not create. Its space is reserved
/// up front, so a full disk is an error at the start, never a SIGBUS. It holds
/// the token followed by newlines (a page, growing for a longer token), so
/// `"$(cat FILE)"` is exactly the token.
class InFlightFile {
 public:
  /// `path`: a new file, or "auto" for one in a private directory made with
  /// mkdtemp under $XDG_RUNTIME_DIR, $TMPDIR or /tmp. UsageError when it
  /// exists already or cannot be created and reserved.
  explicit InFlightFile(const std::string& path);
  ~InFlightFile();
  InFlightFile(const InFlightFile&) = delete;
  InFlightFile& operator=(const InFlightFile&) = delete;

  const std::string& path() const { return path_; }
  /// Replaces the content with `token` (and newline padding). When the file
  /// cannot grow for a longer token, stops writing it and says so on stderr.
  void write(const std::string& token);

 private:
  bool reserve(std::size_t capacity);
  void release();

  std::string path_;
  std::string private_dir_;  // made by us, removed with the file
  int fd_ = -1;
  char* map_ = nullptr;
  std::size_t capacity_ = 0;
  std::size_t length_ = 0;
};

class CaseLog final : public RunObserver {
 public:
  /// `in_flight_path`: "auto", "none", or a new file (InFlightFile).
  /// `json_path`: JSON-lines file ("" for none; never the in-flight file).
  /// `case_timeout_seconds`: a case running longer is reported and the
  /// process exits 1 (0: no watchdog).
  CaseLog(const std::string& in_flight_path, const std::string& json_path,
          double case_timeout_seconds, CaseContext context);
  ~CaseLog() override;
  CaseLog(const CaseLog&) = delete;
  CaseLog& operator=(const CaseLog&) = delete;

  void before_case(const CaseEvent& event) override;
  void after_case(const CaseEvent& event) override;

  /// "" when there is no in-flight file.
  std::string in_flight_path() const;
  /// Flushes and closes the JSON file; "" when every line was written,
  /// otherwise why not (the file is then incomplete).
  std::string finish_json();

 private:
  void watch();
  void fail_json(int cause);

  std::unique_ptr<InFlightFile> in_flight_;
  CaseContext context_;
  std::string json_path_;
  std::FILE* json_ = nullptr;
  std::string json_error_;
  std::string token_;  // token of the case in flight, when needed

  double case_timeout_seconds_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stop_ = false;
  bool case_running_ = false;
  std::chrono::steady_clock::time_point case_start_;
  std::string case_property_;
  std::string case_token_;
  std::thread watchdog_;
};

}  // namespace capcheck::cli
