#include "case_log.h"

#include "capcheck/report.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sys/mman.h>
#include <unistd.h>

#include "capcheck/errors.h"
#include "capcheck/token.h"

namespace capcheck::cli {

std::string default_in_flight_path() {
  const char* tmp = std::getenv("TMPDIR");
  return std::string(tmp && *tmp ? tmp : "/tmp") + "/capcheck-" + std::to_string(getpid()) +
         ".inflight";
}

CaseLog::CaseLog(std::string in_flight_path, const std::string& json_path,
                 double case_timeout_seconds, std::string backend)
    : in_flight_path_(std::move(in_flight_path)),
      backend_(std::move(backend)),
      case_timeout_seconds_(case_timeout_seconds) {
  if (!in_flight_path_.empty()) {
    // A shared mapping: what is written survives the process dying mid-case,
    // at the cost of a memcpy per case instead of a system call.
    in_flight_fd_ = open(in_flight_path_.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (in_flight_fd_ < 0) {
      throw UsageError("--in-flight: cannot create '" + in_flight_path_ + "': " +
                       std::strerror(errno));
    }
    in_flight_capacity_ = kTokenLengthMax + 256;
    if (ftruncate(in_flight_fd_, static_cast<off_t>(in_flight_capacity_)) != 0) {
      throw UsageError("--in-flight: cannot size '" + in_flight_path_ + "'");
    }
    void* map = mmap(nullptr, in_flight_capacity_, PROT_READ | PROT_WRITE, MAP_SHARED,
                     in_flight_fd_, 0);
    if (map == MAP_FAILED) throw UsageError("--in-flight: cannot map '" + in_flight_path_ + "'");
    in_flight_map_ = static_cast<char*>(map);
    std::memset(in_flight_map_, ' ', in_flight_capacity_);
  }
  if (!json_path.empty()) {
    json_.open(json_path, std::ios::trunc);
    if (!json_) throw UsageError("--json: cannot write '" + json_path + "'");
  }
  if (case_timeout_seconds_ > 0) watchdog_ = std::thread([this] { watch(); });
}

CaseLog::~CaseLog() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  if (watchdog_.joinable()) watchdog_.join();
  if (in_flight_map_) munmap(in_flight_map_, in_flight_capacity_);
  if (in_flight_fd_ >= 0) {
    close(in_flight_fd_);
    unlink(in_flight_path_.c_str());  // a clean exit leaves nothing behind
  }
}

void CaseLog::write_in_flight(const std::string& line) {
  const std::size_t length = std::min(line.size(), in_flight_capacity_);
  std::memcpy(in_flight_map_, line.data(), length);
  if (length < in_flight_length_) std::memset(in_flight_map_ + length, ' ', in_flight_length_ - length);
  in_flight_length_ = length;
}

void CaseLog::before_case(const CaseEvent& event) {
  const bool need_token = in_flight_map_ != nullptr || json_.is_open() || watchdog_.joinable();
  if (!need_token) return;
  token_ = encode_token(*event.scenario);
  if (in_flight_map_) write_in_flight(token_ + "\n");
  if (watchdog_.joinable()) {
    std::lock_guard<std::mutex> lock(mutex_);
    case_running_ = true;
    case_start_ = std::chrono::steady_clock::now();
    case_property_ = std::string(event.property);
    case_token_ = token_;
  }
}

void CaseLog::after_case(const CaseEvent& event) {
  if (watchdog_.joinable()) {
    std::lock_guard<std::mutex> lock(mutex_);
    case_running_ = false;
  }
  if (json_.is_open()) {
    nlohmann::json line;
    line["property"] = std::string(event.property);
    line["origin"] = case_origin_name(event.origin);
    line["status"] = event.verdict->passed ? "passed" : "violated";
    line["backend"] = backend_;
    line["token"] = token_;
    line["seconds"] = event.seconds;
    if (!event.verdict->passed) line["message"] = event.verdict->message;
    json_ << line.dump() << '\n';
  }
}

void CaseLog::watch() {
  std::unique_lock<std::mutex> lock(mutex_);
  const auto timeout = std::chrono::duration<double>(case_timeout_seconds_);
  while (!stop_) {
    wake_.wait_for(lock, std::chrono::milliseconds(100));
    if (!case_running_ || std::chrono::steady_clock::now() - case_start_ < timeout) continue;
    // A hung case cannot be interrupted safely; report it as a failure with
    // its token and end the process.
    std::cout.flush();
    std::fprintf(stdout,
                 "\n--- %s: a case ran longer than --case-timeout %.1f s (a hang); reported as a "
                 "violation\nreproduce: %s\n",
                 case_property_.c_str(), case_timeout_seconds_,
                 reproduce_command_for_token(case_token_, backend_, case_property_).c_str());
    std::fflush(stdout);
    std::_Exit(static_cast<int>(ExitCode::kPropertyViolated));
  }
}

}  // namespace capcheck::cli
