#include "capcheck/detail/files.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "capcheck/errors.h"

namespace capcheck::detail {

namespace {

std::string prefix(std::string_view what) {
  return what.empty() ? std::string() : std::string(what) + ": ";
}

// Closes a descriptor at scope exit.
struct Descriptor {
  explicit Descriptor(int value) : fd(value) {}
  ~Descriptor() {
    if (fd >= 0) ::close(fd);
  }
  Descriptor(const Descriptor&) = delete;
  Descriptor& operator=(const Descriptor&) = delete;
  int fd;
};

std::string limit_text(std::size_t limit) {
  if (limit % (1u << 20) == 0) return std::to_string(limit >> 20) + " MiB";
  return std::to_string(limit) + " bytes";
}

}  // namespace

bool write_all(int fd, std::string_view text) {
  while (!text.empty()) {
    const ssize_t n = ::write(fd, text.data(), text.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    if (n == 0) {
      errno = EIO;
      return false;
    }
    text.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

std::string read_bounded_file(const std::string& path, std::size_t limit, std::string_view what) {
  Descriptor file(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (file.fd < 0) {
    throw UsageError(prefix(what) + "cannot read " + quote_input(path, 200) + ": " +
                     std::strerror(errno));
  }
  struct stat info {};
  const bool known = ::fstat(file.fd, &info) == 0;
  if (known && S_ISDIR(info.st_mode)) {
    throw UsageError(prefix(what) + quote_input(path, 200) + " is a directory, not a file");
  }
  if (known && S_ISREG(info.st_mode) && static_cast<std::size_t>(info.st_size) > limit) {
    throw UsageError(prefix(what) + quote_input(path, 200) + " is " +
                     std::to_string(info.st_size) + " bytes, above the limit of " +
                     limit_text(limit));
  }
  std::string text;
  char chunk[65536];
  for (;;) {
    const ssize_t n = ::read(file.fd, chunk, sizeof chunk);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw UsageError(prefix(what) + "reading " + quote_input(path, 200) + " failed: " +
                       std::strerror(errno));
    }
    if (n == 0) break;
    if (text.size() + static_cast<std::size_t>(n) > limit) {
      throw UsageError(prefix(what) + quote_input(path, 200) + " holds more than the limit of " +
                       limit_text(limit));
    }
    text.append(chunk, static_cast<std::size_t>(n));
  }
  return text;
}

void append_whole(const std::string& path, std::string_view text, std::string_view torn_marker) {
  const auto fail = [&](const std::string& doing) {
    throw OutputError("cannot " + doing + " " + quote_input(path, 200) + ": " +
                      std::strerror(errno));
  };
  Descriptor file(::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644));
  if (file.fd < 0) fail("open");
  // Every capcheck appender takes the lock: entries land one after another.
  while (::flock(file.fd, LOCK_EX) != 0) {
    if (errno != EINTR) fail("lock");
  }
  struct stat info {};
  if (::fstat(file.fd, &info) != 0) fail("inspect");
  const off_t size_before = info.st_size;

  std::string entry;
  if (size_before > 0) {
    // A torn last line (an append cut by a crash) is ended and marked, so the
    // file stays readable and nothing is dropped.
    Descriptor reader(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    char last = '\n';
    if (reader.fd >= 0 && ::pread(reader.fd, &last, 1, size_before - 1) == 1 && last != '\n') {
      entry = "\n" + std::string(torn_marker) + "\n";
    }
  }
  entry.append(text);
  // One write of the whole entry; on any failure the file is cut back, so a
  // full disk or a file-size limit (EFBIG, once SIGXFSZ is ignored, as the
  // CLI does) leaves no half entry.
  if (!write_all(file.fd, entry) || ::fdatasync(file.fd) != 0) {
    const int cause = errno;
    if (::ftruncate(file.fd, size_before) != 0) { /* the cause below is what matters */ }
    errno = cause;
    fail("write");
  }
}

}  // namespace capcheck::detail
