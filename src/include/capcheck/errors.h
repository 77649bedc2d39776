// Error tiers of capcheck (docs/architecture.md): user misuse, backend/CUDA failures,
// internal invariants, and the process exit code of each.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

namespace capcheck {

/// Process exit codes, one per failure class.
enum class ExitCode : int {
  kOk = 0,
  kPropertyViolated = 1,
  kUsage = 2,
  kBackend = 3,
  kInternal = 4,
  /// The run is incomplete: a property ran no case (its time budget was too
  /// small), or an output (standard output, --json, --regressions) could not
  /// be written. What was printed is right; what is missing is named.
  kIncomplete = 5,
  /// Stopped by SIGINT (128 + 2): the summary, the seeds and any failure found
  /// so far were printed, and regressions saved.
  kInterrupted = 130,
};

/// `'text'` for a message, cut to `max_chars` characters (with the full
/// length named) so a huge input is never echoed whole.
std::string quote_input(std::string_view text, std::size_t max_chars = 64);

/// Bad input or usage: a flag, a token, a JSON file or a scenario field that is
/// not allowed. The message names the offending item and what is allowed.
class UsageError : public std::runtime_error {
 public:
  explicit UsageError(const std::string& message) : std::runtime_error(message) {}
};

/// An output could not be written (standard output, --json, a regression
/// file): a full disk, a file-size limit, a closed pipe. Exit code kIncomplete.
class OutputError : public std::runtime_error {
 public:
  explicit OutputError(const std::string& message) : std::runtime_error(message) {}
};

/// Error kinds a backend reports. The numeric values of the capture kinds are
/// the CUDA runtime's `cudaError_t` values, so the sim and real GPUs agree.
enum class BackendErrorKind : int {
  kInvalidValue = 1,
  kIllegalState = 401,
  kCaptureUnsupported = 900,  // cudaErrorStreamCaptureUnsupported
  kCaptureInvalidated = 901,  // cudaErrorStreamCaptureInvalidated
  kDanglingBuffer = 10001,    // a graph refers to a freed or reallocated buffer
  kUnavailable = 10002,       // the backend cannot run on this machine
  kDevice = 10003,            // any other device/runtime failure
};

/// Returns a stable lower-case name for `kind` ("capture-invalidated", ...).
const char* backend_error_kind_name(BackendErrorKind kind);

/// A device, runtime or capture failure. Records which backend call failed,
/// and where in the source it was issued.
class BackendError : public std::runtime_error {
 public:
  BackendError(BackendErrorKind kind, std::string call, const std::string& message,
               const char* file = "", int line = 0);

  BackendErrorKind kind() const { return kind_; }
  int code() const { return static_cast<int>(kind_); }
  const std::string& call() const { return call_; }
  const char* file() const { return file_; }
  int line() const { return line_; }

 private:
  BackendErrorKind kind_;
  std::string call_;
  const char* file_;
  int line_;
};

/// Where a failure was raised. `current()` in a default argument is the
/// caller's file and line (GCC, clang and nvcc's front end all provide the
/// builtins), so a helper that throws on a caller's behalf still records the
/// caller, not itself.
struct SourceLocation {
  const char* file = "";
  int line = 0;
  static constexpr SourceLocation current(const char* file = __builtin_FILE(),
                                          int line = __builtin_LINE()) {
    return SourceLocation{file, line};
  }
};

/// Throws BackendError(kind, call, message) located at `where`: the caller of
/// the function whose default argument is SourceLocation::current().
[[noreturn]] void throw_backend_error(BackendErrorKind kind, std::string call,
                                      const std::string& message,
                                      SourceLocation where = SourceLocation::current());

/// An exception of a type capcheck does not know (std::out_of_range, a
/// user's own), thrown by a subject's code: a defect of the subject, which
/// check_property turns into a failed verdict. Carries the subject, the phase
/// that threw ("prepare", "capture", "replay", ...), and the original type
/// and message.
class SubjectError : public std::runtime_error {
 public:
  SubjectError(std::string subject, std::string phase, std::string type, std::string message);
  const std::string& subject() const { return subject_; }
  const std::string& phase() const { return phase_; }
  const std::string& type() const { return type_; }
  const std::string& message() const { return message_; }

 private:
  std::string subject_, phase_, type_, message_;
};

/// One of capcheck's own invariants does not hold: a bug in capcheck.
class InternalError : public std::logic_error {
 public:
  explicit InternalError(const std::string& message) : std::logic_error(message) {}
};

namespace detail {
[[noreturn]] void assert_fail(const char* condition, const char* file, int line);
}  // namespace detail

}  // namespace capcheck

/// An internal invariant, checked in every build (release and fuzz included).
#define CAPCHECK_ASSERT(condition)                                            \
  do {                                                                        \
    if (!(condition)) ::capcheck::detail::assert_fail(#condition, __FILE__, __LINE__); \
  } while (false)
