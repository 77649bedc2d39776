// capcheck mutants: the kill matrix. Every protocol (with and without the
// draft loop) and every mutant of the built-in TensorRT-LLM subjects, run
// against every property with one budget and one seed per cell: which
// property kills which defect, after how many cases, shrunk to what, with the
// token that reproduces it. A defect no property kills (a survivor) or a
// violation of the reference protocol (a false alarm) makes it exit 1.
#include <fmt/core.h>

#include <algorithm>
#include <cctype>
#include <csignal>
#include <iostream>
#include <nlohmann/json.hpp>

#include "capcheck/errors.h"
#include "capcheck/token.h"
#include "commands.h"

namespace capcheck::cli {

namespace {

struct Row {
  bool draft_loop = true;
  Protocol protocol = Protocol::kReference;
  Mutant mutant = Mutant::kNone;
  bool defect() const { return protocol != Protocol::kReference || mutant != Mutant::kNone; }
  std::string name() const {
    return mutant == Mutant::kNone ? std::string(protocol_name(protocol))
                                   : "mutant " + std::string(mutant_name(mutant));
  }
};

struct Cell {
  std::string property;
  bool killed = false;
  int cases = 0;  // run; when killed, the failing case is the last
  double seconds = 0.0;
  std::optional<Scenario> shrunk;
  std::string token;
};

// The catalogue: each protocol without and with the draft loop, then each
// mutant on the reference protocol with the draft loop.
std::vector<Row> catalogue(const SubjectEntry& entry) {
  std::vector<Row> rows;
  for (const bool loop : {false, true}) {
    for (int p = 0; p < kProtocolCount; ++p) rows.push_back({loop, static_cast<Protocol>(p), Mutant::kNone});
  }
  for (int m = 1; m < kMutantCount; ++m) {
    const auto mutant = static_cast<Mutant>(m);
    if (implements_mutant(entry, mutant)) rows.push_back({true, Protocol::kReference, mutant});
  }
  return rows;
}

std::string shrunk_text(const Scenario& s) {
  return fmt::format("batch {}, draft_len {}, warmups {}", s.key.batch_size, s.key.draft_len,
                     s.warmups_count);
}

// One column letter per property: the first letter of each word not yet
// taken, else the first free letter of the name.
std::vector<std::string> column_names(const std::vector<const PropertyInfo*>& properties) {
  std::vector<std::string> names;
  for (const PropertyInfo* p : properties) {
    std::string candidates;
    const std::string name(p->name);
    for (std::size_t i = 0; i < name.size(); ++i) {
      if (i == 0 || name[i - 1] == '_') candidates += static_cast<char>(std::toupper(name[i]));
    }
    for (char c : name) {
      if (c != '_') candidates += static_cast<char>(std::toupper(c));
    }
    std::string chosen = "?";
    for (char c : candidates) {
      const std::string letter(1, c);
      if (std::find(names.begin(), names.end(), letter) == names.end()) {
        chosen = letter;
        break;
      }
    }
    names.push_back(chosen);
  }
  return names;
}

}  // namespace

int mutants_command(CommonOptions common, const MutantsOptions& options) {
  auto properties = select_properties(common.properties);
  if (common.properties.empty()) {
    // A defect of a subject is the same on every backend: backends_agree
    // (killed by a wrong backend, tests/properties_test.cc) is left out
    // unless named.
    properties.erase(std::remove_if(properties.begin(), properties.end(),
                                    [](const PropertyInfo* p) { return p->name == "backends_agree"; }),
                     properties.end());
  }
  OpenSubjects open = open_subjects(common, properties);
  const SubjectEntry& entry = *open.entry;
  if (!(entry.fields & kFieldProtocol) || !(entry.fields & kFieldMutant)) {
    throw UsageError("capcheck mutants runs the protocol and mutant catalogue of the built-in "
                     "TensorRT-LLM subjects (trtllm, trtllm-torch); subject " + entry.name +
                     " reads neither (its variants are --option values: run each with `capcheck "
                     "run --option ...`)");
  }
  if (entry.generator) {
    throw UsageError("capcheck mutants needs the built-in scenario generator; subject " + entry.name +
                     " has its own");
  }
  const std::vector<Row> rows = catalogue(entry);
  const std::vector<std::string> columns = column_names(properties);
  RunConfig config;
  config.cases = options.cases;
  config.seed = options.seed;
  config.stop = stop_flag();
  const bool text = !options.json && !options.markdown;
  if (text) {
    std::cout << fmt::format("capcheck mutants: subject={} backend={} cases={} seed={} (per cell)\n",
                             describe(open.context.subject), common.backend, options.cases,
                             options.seed);
    std::cout << "columns:";
    for (std::size_t p = 0; p < properties.size(); ++p) {
      std::cout << (p ? ", " : " ") << columns[p] << " " << properties[p]->name;
    }
    std::cout << "\ncell: xN = violated at generated case N, . = passed every case\n";
    std::cout << fmt::format("{:<10} {:<34}", "draft_loop", "protocol / mutant");
    for (const auto& c : columns) std::cout << fmt::format(" {:>6}", c);
    std::cout << "  verdict\n";
  }

  std::vector<std::vector<Cell>> matrix;
  int survivors = 0, false_alarms = 0;
  bool interrupted = false;
  for (const Row& row : rows) {
    config.gen = GenOptions{};
    config.gen.draft_loop = row.draft_loop;
    config.gen.protocol = row.protocol;
    config.gen.mutant = row.mutant;
    std::vector<Cell> cells;
    int kills = 0;
    for (const PropertyInfo* property : properties) {
      const RunResult result = run_property(open.get(), *property, config);
      if (result.stopped_by_request) {
        interrupted = true;
        break;
      }
      Cell cell;
      cell.property = std::string(property->name);
      cell.killed = !result.passed;
      cell.cases = result.cases_passed + (cell.killed ? 1 : 0);
      cell.seconds = result.seconds;
      if (cell.killed) {
        cell.shrunk = *result.counterexample;
        cell.token = encode_token(*result.counterexample, open.context.subject);
        ++kills;
      }
      cells.push_back(std::move(cell));
    }
    if (interrupted) break;
    const bool survivor = row.defect() && kills == 0;
    const bool alarm = !row.defect() && kills > 0;
    survivors += survivor;
    false_alarms += alarm;
    if (text) {
      std::cout << fmt::format("{:<10} {:<34}", row.draft_loop ? "on" : "off", row.name());
      for (const Cell& c : cells) {
        std::cout << fmt::format(" {:>6}", c.killed ? "x" + std::to_string(c.cases) : ".");
      }
      std::cout << "  "
                << (survivor ? "SURVIVED"
                    : alarm  ? "FALSE ALARM (the reference protocol violates a property)"
                    : row.defect() ? fmt::format("killed by {}", kills)
                                   : "passes (expected)")
                << '\n'
                << std::flush;
    }
    matrix.push_back(std::move(cells));
  }

  if (interrupted) {
    std::cerr << fmt::format("capcheck mutants: interrupted after {} of {} rows; no matrix\n",
                             matrix.size(), rows.size());
    return 128 + (stop_signal() ? stop_signal() : SIGINT);
  }
  if (options.json) {
    nlohmann::json j;
    j["subject"] = describe(open.context.subject);
    j["backend"] = common.backend;
    j["cases"] = options.cases;
    j["seed"] = options.seed;
    j["rows"] = nlohmann::json::array();
    for (std::size_t r = 0; r < rows.size(); ++r) {
      nlohmann::json row;
      row["draft_loop"] = rows[r].draft_loop;
      row["protocol"] = std::string(protocol_name(rows[r].protocol));
      row["mutant"] = std::string(mutant_name(rows[r].mutant));
      row["defect"] = rows[r].defect();
      row["cells"] = nlohmann::json::array();
      for (const Cell& c : matrix[r]) {
        nlohmann::json cell;
        cell["property"] = c.property;
        cell["killed"] = c.killed;
        cell["cases"] = c.cases;
        cell["seconds"] = c.seconds;
        if (c.shrunk) {
          cell["shrunk"] = {{"batch_size", c.shrunk->key.batch_size},
                            {"draft_len", c.shrunk->key.draft_len},
                            {"warmups", c.shrunk->warmups_count}};
          cell["token"] = c.token;
        }
        row["cells"].push_back(std::move(cell));
      }
      j["rows"].push_back(std::move(row));
    }
    j["survivors"] = survivors;
    j["false_alarms"] = false_alarms;
    std::cout << j.dump(2) << '\n';
  } else if (options.markdown) {
    std::cout << "| draft loop | protocol / mutant |";
    for (const auto& c : columns) std::cout << ' ' << c << " |";
    std::cout << "\n|---|---|";
    for (std::size_t p = 0; p < columns.size(); ++p) std::cout << "---|";
    std::cout << '\n';
    for (std::size_t r = 0; r < rows.size(); ++r) {
      const Row& row = rows[r];
      std::cout << "| " << (row.draft_loop ? "on" : "off") << " | "
                << (row.mutant == Mutant::kNone
                        ? fmt::format("`{}`", protocol_name(row.protocol))
                        : fmt::format("mutant `{}`", mutant_name(row.mutant)))
                << " |";
      for (const Cell& c : matrix[r]) {
        std::cout << (c.killed ? fmt::format(" ✗ {} |", c.cases) : " |");
      }
      std::cout << '\n';
    }
    std::cout << "\nColumns:";
    for (std::size_t p = 0; p < properties.size(); ++p) {
      std::cout << (p ? ", " : " ") << "**" << columns[p] << "** `" << properties[p]->name << "`";
    }
    std::cout << fmt::format(". ✗ N: violated at generated case N of {} (seed {}).\n",
                             options.cases, options.seed);
  } else {
    std::cout << "\nshrunk counterexamples (first killing property of each defect):\n";
    for (std::size_t r = 0; r < rows.size(); ++r) {
      for (const Cell& c : matrix[r]) {
        if (!c.killed) continue;
        std::cout << fmt::format("  {:<3} {:<34} {}: {}\n      reproduce: capcheck reproduce {}\n",
                                 rows[r].draft_loop ? "on" : "off", rows[r].name(), c.property,
                                 shrunk_text(*c.shrunk), c.token);
        break;
      }
    }
    std::cout << fmt::format("\nsummary: {} rows ({} defects), {} survived, {} false alarm(s)\n",
                             rows.size(),
                             std::count_if(rows.begin(), rows.end(), [](const Row& r) { return r.defect(); }),
                             survivors, false_alarms);
  }
  if (const std::string error = stdout_error(); !error.empty()) throw OutputError(error);
  return survivors || false_alarms ? static_cast<int>(ExitCode::kPropertyViolated) : 0;
}

}  // namespace capcheck::cli
