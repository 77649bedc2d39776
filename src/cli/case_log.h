// Per-case logging of the CLI: the in-flight token (written before each case
// runs, so a crash or hang leaves a reproduction), a watchdog that reports a
// hung case as a failure, and JSON lines (one per case).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <fstream>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "capcheck/runner.h"

namespace capcheck::cli {

class CaseLog final : public RunObserver {
 public:
  /// `in_flight_path`: file that holds the token of the running case ("" for
  /// none). `json_path`: JSON-lines file ("" for none). `case_timeout_seconds`:
  /// a case running longer is reported and the process exits 1 (0: no watchdog).
  CaseLog(std::string in_flight_path, const std::string& json_path, double case_timeout_seconds,
          std::string backend);
  ~CaseLog() override;
  CaseLog(const CaseLog&) = delete;
  CaseLog& operator=(const CaseLog&) = delete;

  void before_case(const CaseEvent& event) override;
  void after_case(const CaseEvent& event) override;

  const std::string& in_flight_path() const { return in_flight_path_; }

 private:
  void write_in_flight(const std::string& line);
  void watch();

  std::string in_flight_path_;
  std::string backend_;
  char* in_flight_map_ = nullptr;
  std::size_t in_flight_capacity_ = 0;
  std::size_t in_flight_length_ = 0;
  int in_flight_fd_ = -1;
  std::ofstream json_;
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

/// "/tmp/capcheck-<pid>.inflight" (under $TMPDIR when set).
std::string default_in_flight_path();

}  // namespace capcheck::cli
