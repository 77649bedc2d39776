// The ENV of capcheck_add_test() (cmake/CapcheckHelpers.cmake), compiled in:
// "NAME=VALUE|NAME=VALUE" set before main() unless the environment already
// has NAME. gtest_discover_tests cannot carry a list-valued ENVIRONMENT
// property, so each test binary carries its own.
#include <cstdlib>
#include <string>

namespace {

const bool kTestEnvApplied = [] {
#if defined(CAPCHECK_TEST_ENV)
  const std::string all = CAPCHECK_TEST_ENV;
  std::size_t start = 0;
  while (start < all.size()) {
    const std::size_t end = all.find('|', start);
    const std::string entry = all.substr(start, end == std::string::npos ? std::string::npos : end - start);
    const std::size_t equals = entry.find('=');
    if (equals != std::string::npos) {
      setenv(entry.substr(0, equals).c_str(), entry.substr(equals + 1).c_str(), /*overwrite=*/0);
    }
    if (end == std::string::npos) break;
    start = end + 1;
  }
#endif
  return true;
}();

}  // namespace
