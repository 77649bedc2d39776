#include "case_log.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <utility>

#include "capcheck/errors.h"
#include "capcheck/report.h"
#include "capcheck/token.h"

namespace capcheck::cli {

namespace {

std::size_t page_size() {
  const long page = sysconf(_SC_PAGESIZE);
  return page > 0 ? static_cast<std::size_t>(page) : 4096;
}

std::string private_base_dir() {
  for (const char* name : {"XDG_RUNTIME_DIR", "TMPDIR"}) {
    const char* dir = std::getenv(name);
    struct stat info {};
    if (dir && *dir && ::stat(dir, &info) == 0 && S_ISDIR(info.st_mode)) return dir;
  }
  return "/tmp";
}

}  // namespace

InFlightFile::InFlightFile(const std::string& path) {
  if (path == "auto") {
    std::string pattern = private_base_dir() + "/capcheck-XXXXXX";
    if (!::mkdtemp(pattern.data())) {
      throw UsageError("--in-flight: cannot make a private directory in " +
                       quote_input(private_base_dir(), 200) + ": " + std::strerror(errno) +
                       " (choose a file with --in-flight FILE, or --in-flight none)");
    }
    private_dir_ = pattern;
    path_ = private_dir_ + "/in-flight.token";
  } else {
    path_ = path;
  }
  fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd_ < 0) {
    const int cause = errno;
    if (!private_dir_.empty()) ::rmdir(private_dir_.c_str());
    throw UsageError("--in-flight: cannot create " + quote_input(path_, 200) + ": " +
                     std::strerror(cause) +
                     (cause == EEXIST || cause == ELOOP
                          ? " (capcheck never writes into a file it did not create; remove it or "
                            "name a new file)"
                          : ""));
  }
  if (!reserve(page_size())) {
    const int cause = errno;
    release();
    throw UsageError("--in-flight: cannot reserve space for " + quote_input(path_, 200) + ": " +
                     std::strerror(cause) + " (free some space, or use --in-flight none)");
  }
}

InFlightFile::~InFlightFile() { release(); }

void InFlightFile::release() {
  if (map_) ::munmap(map_, capacity_);
  map_ = nullptr;
  if (fd_ >= 0) {
    ::close(fd_);
    ::unlink(path_.c_str());  // ours: created with O_EXCL
  }
  fd_ = -1;
  if (!private_dir_.empty()) ::rmdir(private_dir_.c_str());
  private_dir_.clear();
}

// Makes the file `capacity` bytes, all of them allocated (so writing through
// the mapping can never fault on a full disk), mapped and newline-filled.
bool InFlightFile::reserve(std::size_t capacity) {
  const int error = ::posix_fallocate(fd_, 0, static_cast<off_t>(capacity));
  if (error != 0) {
    errno = error;
    return false;
  }
  void* map = ::mmap(nullptr, capacity, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0);
  if (map == MAP_FAILED) return false;
  if (map_) {
    std::memcpy(map, map_, length_);
    ::munmap(map_, capacity_);
  }
  map_ = static_cast<char*>(map);
  std::memset(map_ + length_, '\n', capacity - length_);
  capacity_ = capacity;
  return true;
}

void InFlightFile::write(const std::string& token) {
  if (!map_) return;
  if (token.size() + 1 > capacity_) {
    const std::size_t page = page_size();
    if (!reserve((token.size() + 1 + page - 1) / page * page)) {
      std::cerr << "capcheck: --in-flight: cannot grow " << path_ << " for a token of "
                << token.size() << " characters (" << std::strerror(errno)
                << "); the in-flight token is no longer written\n";
      ::munmap(map_, capacity_);
      map_ = nullptr;
      return;
    }
  }
  std::memcpy(map_, token.data(), token.size());
  if (token.size() < length_) std::memset(map_ + token.size(), '\n', length_ - token.size());
  length_ = token.size();
}

CaseLog::CaseLog(const std::string& in_flight_path, const std::string& json_path,
                 double case_timeout_seconds, CaseContext context)
    : context_(std::move(context)),
      json_path_(json_path),
      case_timeout_seconds_(case_timeout_seconds) {
  if (!in_flight_path.empty() && in_flight_path != "none") {
    in_flight_ = std::make_unique<InFlightFile>(in_flight_path);
  }
  if (!json_path.empty()) {
    struct stat json_info {}, in_flight_info {};
    if (in_flight_ && ::stat(json_path.c_str(), &json_info) == 0 &&
        ::stat(in_flight_->path().c_str(), &in_flight_info) == 0 &&
        json_info.st_dev == in_flight_info.st_dev && json_info.st_ino == in_flight_info.st_ino) {
      throw UsageError("--json: " + quote_input(json_path, 200) +
                       " is the --in-flight file; give them different paths");
    }
    json_ = std::fopen(json_path.c_str(), "w");
    if (!json_) {
      throw UsageError("--json: cannot write " + quote_input(json_path, 200) + ": " +
                       std::strerror(errno));
    }
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
  if (json_) std::fclose(json_);
}

std::string CaseLog::in_flight_path() const { return in_flight_ ? in_flight_->path() : ""; }

// Records the first write failure of the JSON file (reported at the end,
// exit 5; the run itself goes on) and closes it.
void CaseLog::fail_json(int cause) {
  if (json_error_.empty()) {
    json_error_ = "--json: writing " + quote_input(json_path_, 200) + " failed: " +
                  std::strerror(cause) + "; the file is incomplete";
  }
  if (json_) std::fclose(json_);
  json_ = nullptr;
}

std::string CaseLog::finish_json() {
  if (!json_) return json_error_;
  if (std::fflush(json_) != 0 || std::ferror(json_)) {
    fail_json(errno);
  } else if (std::fclose(std::exchange(json_, nullptr)) != 0) {
    fail_json(errno);
  }
  return json_error_;
}

void CaseLog::before_case(const CaseEvent& event) {
  const bool need_token = in_flight_ != nullptr || json_ != nullptr || watchdog_.joinable();
  if (!need_token) return;
  token_ = encode_token(*event.scenario, context_.subject);
  if (in_flight_) in_flight_->write(token_);
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
  if (json_) {
    nlohmann::json line;
    line["property"] = std::string(event.property);
    line["origin"] = case_origin_name(event.origin);
    line["status"] = event.verdict->passed ? "passed" : "violated";
    line["backend"] = context_.backend;
    line["subject"] = context_.subject.name;
    if (!context_.subject.options.empty()) line["subject_options"] = context_.subject.options;
    line["token"] = token_;
    line["seconds"] = event.seconds;
    if (!event.verdict->passed) line["message"] = event.verdict->message;
    const std::string text = line.dump() + '\n';
    if (std::fwrite(text.data(), 1, text.size(), json_) != text.size() || std::ferror(json_)) {
      fail_json(errno);
    }
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
                 reproduce_command_for_token(case_token_, context_, case_property_).c_str());
    std::fflush(stdout);
    std::_Exit(static_cast<int>(ExitCode::kPropertyViolated));
  }
}

}  // namespace capcheck::cli
