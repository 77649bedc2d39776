// Shared pieces of the RapidCheck + GoogleTest property suites: one harness
// per backend for the whole suite, and an assertion that prints the verdict and
// a ready-to-paste reproduce command when a property fails.
#pragma once

#include <rapidcheck.h>

#include <string>

#include "capcheck/registry.h"
#include "capcheck/harness.h"
#include "capcheck/properties.h"
#include "capcheck/token.h"
#include "capcheck/generators.h"

namespace capcheck::suites {

/// The harness on `backend`, built once per suite process, without peers:
/// a sim-only suite never loads the torch module.
Harness& harness(const std::string& backend = "sim");
/// The same harness with every other available backend as a peer (backends_agree).
Harness& harness_with_peers(const std::string& backend = "sim");

/// Checks `property` on `scenario` and fails the RapidCheck case with the
/// verdict and its reproduce command.
void require(const char* property, const Scenario& scenario, const std::string& backend = "sim");

}  // namespace capcheck::suites
