// The test data folder (tests/data), for tests compiled with CAPCHECK_TEST_DATA.
#pragma once

#include <fstream>
#include <sstream>
#include <string>

namespace capcheck::test {

/// The whole of tests/data/`name`.
inline std::string data_file(const std::string& name) {
  std::ifstream in(std::string(CAPCHECK_TEST_DATA) + "/" + name);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace capcheck::test
