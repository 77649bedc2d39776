// Runs one property over generated scenarios with RapidCheck, and returns the
// shrunk counterexample as a Scenario (not just RapidCheck's printout), so
// every runner can print a token that reproduces it on any backend.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "capcheck/harness.h"
#include "capcheck/properties.h"
#include "generators.h"

namespace capcheck {

struct RunConfig {
  /// Generated cases to pass before the property is taken to hold.
  int cases = 1000;
  std::uint64_t seed = 0;
  GenOptions gen;
};

struct RunResult {
  std::string property;
  std::uint64_t seed = 0;
  /// Cases that passed before a failure (or all of them).
  int cases_passed = 0;
  bool passed = true;
  double seconds = 0.0;
  /// Shrinks tried and shrinks accepted (each accepted one still failed).
  int shrinks_tried = 0;
  int shrinks_accepted = 0;
  /// The minimal failing scenario and its verdict, when the property failed.
  std::optional<Scenario> counterexample;
  Verdict verdict;
};

/// Runs `property` for `config.cases` generated scenarios, shrinking the first
/// failure. A device failure (BackendError unavailable/device) propagates.
RunResult run_property(Harness& harness, const PropertyInfo& property, const RunConfig& config);

/// The seed a property runs with under CI=true: derived from its name, stable
/// across machines and runs.
std::uint64_t ci_seed(std::string_view property_name);

}  // namespace capcheck
