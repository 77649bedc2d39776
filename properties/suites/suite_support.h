// Shared pieces of the RapidCheck + GoogleTest property suites: one harness
// per backend for the whole suite, and an assertion that prints the verdict and
// a ready-to-paste reproduce command when a property fails.
#pragma once

#include <rapidcheck.h>

#include <string>

#include "capcheck/backends.h"
#include "capcheck/harness.h"
#include "capcheck/properties.h"
#include "capcheck/token.h"
#include "generators.h"

namespace capcheck::suites {

/// The harness on `backend`, built once per suite process.
Harness& harness(const std::string& backend = "sim");

/// Checks `property` on `scenario` and fails the RapidCheck case with the
/// verdict and its reproduce command.
void require(const char* property, const Scenario& scenario, const std::string& backend = "sim");

}  // namespace capcheck::suites
