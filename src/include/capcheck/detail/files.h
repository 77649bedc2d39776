// Reading and appending files the way a testing tool must: bounded reads with
// the limit named, and appends that either land whole or not at all.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace capcheck::detail {

/// The whole of `path`, at most `limit` bytes. UsageError, prefixed with
/// `what`, when it cannot be opened or read, is a directory, or is larger than
/// `limit` (the limit is named). Non-regular files (a pipe, /dev/stdin) are
/// read up to the limit too.
std::string read_bounded_file(const std::string& path, std::size_t limit, std::string_view what);

/// Appends `text` to `path` (created 0644 if missing) as one write under an
/// exclusive lock, so concurrent appenders never interleave, then syncs it.
/// When the file's last line has no newline (an earlier append was cut by a
/// crash), a newline and the line `torn_marker` are written first, so the torn
/// line is ended and marked instead of glued to the new entry. When the write
/// fails (a full disk, a file-size limit) the file is cut back to its size
/// before the call and OutputError is thrown naming the cause: nothing partial
/// is left behind.
void append_whole(const std::string& path, std::string_view text, std::string_view torn_marker);

/// Writes all of `text` to the descriptor `fd`, retrying short writes and
/// EINTR; false (errno set) when the descriptor refuses.
bool write_all(int fd, std::string_view text);

}  // namespace capcheck::detail
