// The capcheck executable. A command line naming a Python plugin (a
// `--plugin` ending in .py, or one in CAPCHECK_PLUGIN_PATH) is handed to the
// Python module, which runs the same command line with a Python interpreter
// (`python3 -m capcheck`, docs/python.md); any other runs here.
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>
#include <string_view>
#include <vector>

#include "cli.h"

namespace {

bool ends_with_py(std::string_view path) {
  return path.size() > 3 && path.substr(path.size() - 3) == ".py";
}

bool names_python_plugin(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--plugin" && i + 1 < argc && ends_with_py(argv[i + 1])) return true;
    if (arg.rfind("--plugin=", 0) == 0 && ends_with_py(arg)) return true;
  }
  const char* env = std::getenv("CAPCHECK_PLUGIN_PATH");
  for (std::string_view list = env ? env : ""; !list.empty();) {
    const auto colon = list.find(':');
    if (ends_with_py(list.substr(0, colon))) return true;
    list = colon == std::string_view::npos ? std::string_view() : list.substr(colon + 1);
  }
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  if (names_python_plugin(argc, argv)) {
    const char* python = std::getenv("CAPCHECK_PYTHON");
    if (python == nullptr || *python == '\0') python = "python3";
    std::vector<char*> args = {const_cast<char*>(python), const_cast<char*>("-m"),
                               const_cast<char*>("capcheck")};
    args.insert(args.end(), argv + 1, argv + argc);
    args.push_back(nullptr);
    ::execvp(python, args.data());
    std::cerr << "capcheck: a Python plugin runs under `" << python
              << " -m capcheck`, which could not be started: " << std::strerror(errno)
              << " (set CAPCHECK_PYTHON to the Python whose torch the module was built for)\n";
    return 2;
  }
  return capcheck::cli::run_cli(argc, argv, /*install_signals=*/true);
}
