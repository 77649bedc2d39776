// A main() for the fuzz harnesses without libFuzzer (g++ builds, or
// CAPCHECK_FUZZ=OFF): runs every file argument, and every file of every
// directory argument (sorted by name), through LLVMFuzzerTestOneInput once, so
// crash files and corpus entries replay under gdb or valgrind. Arguments
// starting with '-' are libFuzzer flags: they are skipped, so a libFuzzer
// command line replays as it is. (As fmt's FMT_FUZZ_LINKMAIN; docs/fuzzing.md.)
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <system_error>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);
// Optional in a harness, as with libFuzzer.
extern "C" __attribute__((weak)) int LLVMFuzzerInitialize(int* argc, char*** argv);

namespace {

// Exit codes as capcheck::ExitCode: bad usage is 2.
constexpr int kExitUsage = 2;

bool replay_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "replay: cannot read %s\n", path.c_str());
    return false;
  }
  const std::vector<char> bytes((std::istreambuf_iterator<char>(in)),
                                std::istreambuf_iterator<char>());
  std::fprintf(stderr, "replay: %s (%zu bytes)\n", path.c_str(), bytes.size());
  // A copy in its own allocation, so ASan sees reads past the end of the input.
  std::vector<std::uint8_t> data(bytes.begin(), bytes.end());
  LLVMFuzzerTestOneInput(data.empty() ? nullptr : data.data(), data.size());
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (LLVMFuzzerInitialize != nullptr) LLVMFuzzerInitialize(&argc, &argv);
  std::vector<std::filesystem::path> inputs;
  for (int i = 1; i < argc; ++i) {
    if (argv[i][0] == '-') continue;
    const std::filesystem::path arg = argv[i];
    std::error_code error;
    if (std::filesystem::is_directory(arg, error)) {
      std::vector<std::filesystem::path> files;
      for (const auto& entry : std::filesystem::directory_iterator(arg, error)) {
        if (entry.is_regular_file()) files.push_back(entry.path());
      }
      std::sort(files.begin(), files.end());
      inputs.insert(inputs.end(), files.begin(), files.end());
    } else if (std::filesystem::exists(arg, error)) {
      inputs.push_back(arg);
    } else {
      std::fprintf(stderr, "replay: no such file or directory: %s\n", argv[i]);
      return kExitUsage;
    }
  }
  if (inputs.empty()) {
    std::fprintf(stderr,
                 "usage: %s FILE_OR_DIR...\n"
                 "  runs each input (each file of a directory) through the fuzz harness once\n",
                 argv[0]);
    return kExitUsage;
  }
  int failed = 0;
  for (const auto& input : inputs) failed += replay_file(input) ? 0 : 1;
  std::fprintf(stderr, "replay: %zu input(s) run, %d unreadable\n", inputs.size() - failed, failed);
  return failed == 0 ? 0 : kExitUsage;
}
