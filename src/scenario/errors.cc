#include "capcheck/errors.h"

#include <string>

namespace capcheck {

const char* backend_error_kind_name(BackendErrorKind kind) {
  switch (kind) {
    case BackendErrorKind::kInvalidValue: return "invalid-value";
    case BackendErrorKind::kIllegalState: return "illegal-state";
    case BackendErrorKind::kCaptureUnsupported: return "capture-unsupported";
    case BackendErrorKind::kCaptureInvalidated: return "capture-invalidated";
    case BackendErrorKind::kDanglingBuffer: return "dangling-buffer";
    case BackendErrorKind::kUnavailable: return "unavailable";
    case BackendErrorKind::kDevice: return "device";
  }
  return "unknown";
}

namespace {
std::string describe(BackendErrorKind kind, const std::string& call, const std::string& message) {
  return call + " failed: " + backend_error_kind_name(kind) + " (" +
         std::to_string(static_cast<int>(kind)) + "): " + message;
}
}  // namespace

BackendError::BackendError(BackendErrorKind kind, std::string call, const std::string& message,
                           const char* file, int line)
    : std::runtime_error(describe(kind, call, message)),
      kind_(kind),
      call_(std::move(call)),
      file_(file),
      line_(line) {}

void throw_backend_error(BackendErrorKind kind, std::string call, const std::string& message,
                         SourceLocation where) {
  throw BackendError(kind, std::move(call), message, where.file, where.line);
}

namespace {
std::string describe_subject_error(const std::string& subject, const std::string& phase,
                                   const std::string& type, const std::string& message) {
  return (subject.empty() ? std::string("the subject") : "subject '" + subject + "'") +
         " threw " + type + " during " + phase + (message.empty() ? "" : ": " + message);
}
}  // namespace

SubjectError::SubjectError(std::string subject, std::string phase, std::string type,
                           std::string message)
    : std::runtime_error(describe_subject_error(subject, phase, type, message)),
      subject_(std::move(subject)),
      phase_(std::move(phase)),
      type_(std::move(type)),
      message_(std::move(message)) {}

std::string quote_input(std::string_view text, std::size_t max_chars) {
  if (text.size() <= max_chars) return "'" + std::string(text) + "'";
  return "'" + std::string(text.substr(0, max_chars)) + "...' (" + std::to_string(text.size()) +
         " characters)";
}

namespace detail {
void assert_fail(const char* condition, const char* file, int line) {
  throw InternalError(std::string("internal invariant violated: ") + condition + " at " + file +
                      ":" + std::to_string(line));
}
}  // namespace detail

}  // namespace capcheck
