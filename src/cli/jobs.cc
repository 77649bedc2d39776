// capcheck run --jobs N: the units of a run (property, batch of
// kCasesPerBatch cases) on N worker processes, merged into the results one
// process would have printed.
//
// Note [workers are processes]: RapidCheck keeps its generation state in
// process-wide stacks (rc::detail::ImplicitParam), so two threads cannot run
// properties at once; a fork would inherit a LibTorch thread pool or a CUDA
// context that do not survive it. So each worker is this executable again,
// with the same arguments and `--worker J/N`: its own backend, subject and
// device context (on a GPU, its own CUDA context and stream). The parent
// hands each worker a unit at a time on its standard input (the next one when
// it reports the last: the slow properties' units do not pile up on one
// worker), a worker prints one JSON line per unit on its standard output,
// and the parent then walks each property's batches in order as a
// sequential run would: the cases of the batches before the first failing
// one, the failing batch's passes and its shrunk counterexample (re-checked
// here for the report). Each batch's cases depend only on the property's seed
// and the batch number, so verdicts, counts, tokens and seeds are those of a
// run with one process, whatever N is; only the times differ.
#include <fmt/core.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <iostream>
#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>

#include "capcheck/errors.h"
#include "capcheck/token.h"
#include "commands.h"

namespace capcheck::cli {

namespace {

std::vector<std::string> g_invocation;
bool g_native = false;

int batch_cases(const UnitPlan& plan, std::uint64_t batch) {
  const std::int64_t left = static_cast<std::int64_t>(plan.cases) -
                            static_cast<std::int64_t>(batch) * kCasesPerBatch;
  return static_cast<int>(std::clamp<std::int64_t>(left, 0, kCasesPerBatch));
}

}  // namespace

void set_invocation(int argc, char** argv, bool native) {
  g_invocation.assign(argv, argv + argc);
  g_native = native;
}

bool UnitPlan::in_shard(std::uint64_t unit) const {
  return unit % shard_count == shard_index - 1;
}

int run_worker_units(Subjects& subjects, const std::vector<const PropertyInfo*>& properties,
                     RunConfig config, const std::vector<std::uint64_t>& seeds,
                     const UnitPlan& plan) {
  const std::vector<Scenario> regressions = config.regressions;
  // One line per unit from the parent: "<unit> <seconds budget, 0 for none>";
  // end of input: done.
  std::uint64_t unit = 0;
  double seconds_max = 0;
  while (!config.stop->load() && std::cin >> unit >> seconds_max) {
    const std::uint64_t i = unit / plan.batches;
    const std::uint64_t b = unit % plan.batches;
    if (i >= properties.size()) throw UsageError("--worker: no unit " + std::to_string(unit));
    RunConfig one = config;
    one.seed = seeds[i];
    one.seconds_max = seconds_max;
    one.owns_batch = [b](std::uint64_t batch) { return batch == b; };
    // A property's regressions replay in the unit of its batch 0, as in --shard.
    one.regressions = b == 0 ? regressions : std::vector<Scenario>{};
    const RunResult r = run_property(subjects, *properties[i], one);
    nlohmann::json line = {
        {"unit", unit},
        {"passed", r.passed},
        {"cases_passed", r.cases_passed},
        {"regressions_passed", r.regressions_passed},
        {"found_by", case_origin_name(r.found_by)},
        {"shrinks_tried", r.shrinks_tried},
        {"shrinks_accepted", r.shrinks_accepted},
        {"shrink_budget_exhausted", r.shrink_budget_exhausted},
        {"seconds", r.seconds},
        {"stopped_by_deadline", r.stopped_by_deadline},
        {"stopped_by_request", r.stopped_by_request},
    };
    if (r.counterexample) line["token"] = encode_token(*r.counterexample);
    std::cout << line.dump() << '\n' << std::flush;
    if (!std::cout) return static_cast<int>(ExitCode::kIncomplete);
  }
  return 0;
}

std::vector<RunResult> run_in_workers(Subjects& subjects,
                                      const std::vector<const PropertyInfo*>& properties,
                                      const std::vector<std::uint64_t>& seeds,
                                      const UnitPlan& plan, int jobs, double seconds_max,
                                      std::vector<std::string>* errors) {
  if (!g_native || g_invocation.empty()) {
    throw UsageError("--jobs runs workers of the capcheck executable; from Python, run the "
                     "`capcheck` command (or one process per core with --shard)");
  }
  struct Worker {
    pid_t pid = -1;
    int from = -1;  // its standard output
    int to = -1;    // its standard input
    std::string pending;
    bool done = false;
  };
  // The units to hand out; a worker that finishes one gets the next: the unit
  // of the property whose finished units took longest (a property none of
  // whose units has finished counts as the longest), so the slow properties'
  // units start early and the run does not end waiting on one of them.
  std::vector<std::uint64_t> queue;
  for (std::uint64_t b = 0; b < plan.batches; ++b) {
    for (std::size_t i = 0; i < properties.size(); ++i) {
      const std::uint64_t unit = i * plan.batches + b;
      if (plan.in_shard(unit)) queue.push_back(unit);
    }
  }
  std::vector<double> cost(properties.size(), -1.0);  // seconds of a finished unit; -1: none yet
  auto take_next = [&]() {
    std::size_t best = 0;
    auto weight = [&](std::uint64_t unit) {
      const double c = cost[unit / plan.batches];
      return c < 0 ? 1e300 : c;
    };
    for (std::size_t k = 1; k < queue.size(); ++k) {
      if (weight(queue[k]) > weight(queue[best])) best = k;
    }
    const std::uint64_t unit = queue[best];
    queue.erase(queue.begin() + static_cast<std::ptrdiff_t>(best));
    return unit;
  };
  const auto start = std::chrono::steady_clock::now();
  std::vector<Worker> workers(static_cast<std::size_t>(jobs));
  std::map<std::uint64_t, nlohmann::json> units;
  std::cout << std::flush;
  for (int j = 0; j < jobs; ++j) {
    int out[2], in[2];
    if (::pipe(out) != 0 || ::pipe(in) != 0) {
      throw OutputError(std::string("--jobs: pipe: ") + std::strerror(errno));
    }
    std::vector<std::string> args = g_invocation;
    args.push_back("--worker");
    args.push_back(fmt::format("{}/{}", j + 1, jobs));
    for (const std::uint64_t seed : seeds) {
      args.push_back("--worker-seed");
      args.push_back(std::to_string(seed));
    }
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const pid_t pid = ::fork();
    if (pid < 0) throw OutputError(std::string("--jobs: fork: ") + std::strerror(errno));
    if (pid == 0) {
      ::dup2(out[1], STDOUT_FILENO);
      ::dup2(in[0], STDIN_FILENO);
      for (int fd : {out[0], out[1], in[0], in[1]}) ::close(fd);
      for (const Worker& w : workers) {  // the other workers' pipes
        if (w.from >= 0) ::close(w.from);
        if (w.to >= 0) ::close(w.to);
      }
      ::execv("/proc/self/exe", argv.data());
      std::fprintf(stderr, "capcheck: --jobs: cannot start a worker: %s\n", std::strerror(errno));
      ::_exit(static_cast<int>(ExitCode::kInternal));
    }
    ::close(out[1]);
    ::close(in[0]);
    workers[static_cast<std::size_t>(j)] = Worker{pid, out[0], in[1], "", false};
  }
  // Hands `w` the next unit, or tells it there is none (end of its input).
  auto dispatch = [&](Worker& w) {
    if (w.to < 0) return;
    if (queue.empty() || stop_flag()->load()) {
      ::close(w.to);
      w.to = -1;
      return;
    }
    double share = 0;
    if (seconds_max > 0) {
      const double used =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      share = std::max(seconds_max - used, 1e-9) * jobs / static_cast<double>(queue.size());
    }
    const std::string line = fmt::format("{} {}\n", take_next(), share);
    if (::write(w.to, line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
      ::close(w.to);  // it died: its end-of-output tells
      w.to = -1;
      return;
    }
  };
  for (auto& w : workers) dispatch(w);
  bool forwarded = false;
  for (;;) {
    std::vector<pollfd> polls;
    std::vector<Worker*> open;
    for (auto& w : workers) {
      if (w.done) continue;
      polls.push_back(pollfd{w.from, POLLIN, 0});
      open.push_back(&w);
    }
    if (polls.empty()) break;
    if (stop_flag()->load() && !forwarded) {
      // A stop that reached this process alone (kill PID): the workers stop
      // at their next case and report what they ran.
      for (auto& w : workers) {
        ::kill(w.pid, SIGTERM);
        if (w.to >= 0) ::close(w.to);
        w.to = -1;
      }
      forwarded = true;
    }
    const int ready = ::poll(polls.data(), polls.size(), 200);
    if (ready < 0 && errno != EINTR) {
      throw OutputError(std::string("--jobs: poll: ") + std::strerror(errno));
    }
    for (std::size_t k = 0; k < polls.size(); ++k) {
      if (!(polls[k].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      Worker& w = *open[k];
      char buffer[65536];
      const ssize_t n = ::read(w.from, buffer, sizeof buffer);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        w.done = true;
        ::close(w.from);
        if (w.to >= 0) ::close(w.to);
        w.to = -1;
        continue;
      }
      w.pending.append(buffer, static_cast<std::size_t>(n));
      for (std::size_t end; (end = w.pending.find('\n')) != std::string::npos;) {
        const std::string text = w.pending.substr(0, end);
        w.pending.erase(0, end + 1);
        // What else a worker prints (a note open_subjects gives every process)
        // the parent printed itself.
        if (text.empty() || text[0] != '{') continue;
        nlohmann::json line = nlohmann::json::parse(text, nullptr, false);
        if (line.is_discarded() || !line.contains("unit")) {
          errors->push_back("--jobs: a worker printed a line that is not a unit result: " +
                            quote_input(text, 120));
          continue;
        }
        const auto unit = line["unit"].get<std::uint64_t>();
        if (unit / plan.batches < cost.size() && line["seconds"].is_number()) {
          cost[unit / plan.batches] = line["seconds"].get<double>();
        }
        units[unit] = std::move(line);
        dispatch(w);
      }
    }
  }
  for (std::size_t j = 0; j < workers.size(); ++j) {
    int status = 0;
    while (::waitpid(workers[j].pid, &status, 0) < 0 && errno == EINTR) {
    }
    const bool clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    const bool stopped = forwarded || stop_flag()->load();
    if (!clean && !stopped) {
      errors->push_back(fmt::format(
          "--jobs: worker {}/{} {} {}", j + 1, jobs,
          WIFSIGNALED(status) ? "was killed by signal" : "exited with",
          WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status)));
    }
  }

  // Each property as one process runs it: batches in order up to the first failure.
  std::vector<RunResult> results;
  for (std::size_t i = 0; i < properties.size(); ++i) {
    RunResult r;
    r.property = std::string(properties[i]->name);
    r.seed = seeds[i];
    for (std::uint64_t b = 0; b < plan.batches; ++b) {
      const std::uint64_t unit = i * plan.batches + b;
      if (!plan.in_shard(unit)) {
        r.cases_other_shards += batch_cases(plan, b);
        continue;
      }
      const auto found = units.find(unit);
      if (found == units.end()) {
        r.stopped_by_request = true;  // a worker stopped (or died) before it
        break;
      }
      const nlohmann::json& u = found->second;
      r.cases_passed += u["cases_passed"].get<int>();
      r.regressions_passed += u["regressions_passed"].get<int>();
      r.seconds += u["seconds"].get<double>();
      r.shrinks_tried += u["shrinks_tried"].get<int>();
      r.shrinks_accepted += u["shrinks_accepted"].get<int>();
      r.stopped_by_deadline = r.stopped_by_deadline || u["stopped_by_deadline"].get<bool>();
      r.stopped_by_request = r.stopped_by_request || u["stopped_by_request"].get<bool>();
      if (!u["passed"].get<bool>()) {
        r.passed = false;
        r.found_by = u["found_by"] == "regression" ? CaseOrigin::kRegression : CaseOrigin::kGenerate;
        r.shrink_budget_exhausted = u["shrink_budget_exhausted"].get<bool>();
        r.counterexample = decode_token(u["token"].get<std::string>());
        subjects.set_explanations(true);
        r.verdict = check_property(*properties[i], subjects, *r.counterexample);
        subjects.set_explanations(false);
        if (r.verdict.passed) {
          errors->push_back("--jobs: " + r.property + ": the counterexample a worker found " +
                            "passes when re-checked here (a subject that is not deterministic?)");
        }
        break;
      }
      if (r.stopped_by_request || r.stopped_by_deadline) break;
    }
    results.push_back(std::move(r));
  }
  return results;
}

}  // namespace capcheck::cli
