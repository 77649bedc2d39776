// A run of the engine simulator as a value: the engine's configuration and
// the steps a serving loop took (requests arriving and ending, iterations
// with the accepted counts the target model returned, graph releases). A run
// is what a failure that needs history is: a stale offset read by the third
// replay of a graph, a host value baked by a capture and wrong for the next
// batch. It replays exactly (the accepted counts are in it, not drawn), is
// shrunk (fewer steps, shorter requests, fewer accepted tokens, smaller
// engine limits), and travels as a `ccr1:` token that `capcheck reproduce`
// and regression files read like a scenario's (docs/reproduce.md).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "capcheck/engine_runner.h"
#include "capcheck/token.h"

namespace capcheck {

/// Most steps a run token holds.
inline constexpr std::size_t kRunStepsMax = 1 << 16;

struct RunStep {
  enum class Kind : std::uint8_t {
    kAddRequest = 0,     // a request arrives: prompt_len, max_new_tokens
    kIterate = 1,        // the engine runs its next iteration (idle when nothing can run)
    kFinishRequest = 2,  // the live request at index `which` (modulo their count) ends
    kClearGraphs = 3,    // CUDAGraphRunner.clear()
  };
  Kind kind = Kind::kIterate;
  std::int32_t prompt_len = 0;
  std::int32_t max_new_tokens = 0;
  std::int32_t which = 0;
  /// kIterate: draft tokens accepted by each real generation row in order
  /// (padding dummies accept none). A row past the end accepts 0, a count
  /// above the iteration's draft_len is that draft_len: a shrunk run stays valid.
  std::vector<std::int32_t> accepted;

  friend bool operator==(const RunStep& a, const RunStep& b) {
    return a.kind == b.kind && a.prompt_len == b.prompt_len &&
           a.max_new_tokens == b.max_new_tokens && a.which == b.which && a.accepted == b.accepted;
  }
};

struct EngineRun {
  SubjectRef subject;
  sim::EngineConfig config;
  std::vector<RunStep> steps;
};

/// The `ccr1:` token of a run: every configuration field and step, the
/// subject and its options; validate(run.config) first (UsageError).
std::string encode_run_token(const EngineRun& run);
/// UsageError naming what is wrong (prefix, framing, checksum, a field, a
/// configuration the simulator refuses).
EngineRun decode_run_token(std::string_view token);

/// What replaying a run found: the first step that failed, or none.
struct RunOutcome {
  bool failed() const { return !failures.empty(); }
  /// The failing step's index in EngineRun::steps; -1 for a startup capture.
  int step = -1;
  /// "iteration 7 (replay of key (4,2)): the replay" and the like: the
  /// iteration, what the graph runner did, and which check failed there.
  std::string label;
  std::vector<Verdict> failures;
  /// The failing iteration's scenario (a startup capture's, or a lazy
  /// capture's or replay's host-prepared inputs).
  std::optional<Scenario> scenario;
  /// One line per step run, as `capcheck simulate` prints them.
  std::vector<std::string> history;
  /// Iterations that ran (idle ones not counted).
  int iterations = 0;
};

/// Builds fresh subjects for one replay (each run starts from a new engine).
using SubjectsFactory = std::function<std::unique_ptr<Subjects>()>;

/// Replays `run` from a fresh engine and fresh subjects up to its first
/// failure. A step the engine refuses (a request that can never run) is a
/// UsageError naming the step.
RunOutcome replay_run(const EngineRun& run, const SubjectsFactory& subjects);

/// The per-step hook of a run being recorded (simulate, the stateful suite):
/// call record() with what the loop did; run() is the steps so far.
class RunRecorder {
 public:
  RunRecorder(SubjectRef subject, sim::EngineConfig config);
  void add_request(std::int32_t prompt_len, std::int32_t max_new_tokens);
  /// An iteration and what it accepted (nullptr: idle).
  void iterate(const sim::Iteration* iteration);
  void finish_request(std::int32_t which);
  void clear_graphs();
  const EngineRun& run() const { return run_; }

 private:
  EngineRun run_;
};

struct ShrinkStats {
  int candidates_tried = 0;
  int accepted = 0;
  bool budget_exhausted = false;
};

/// Shrinks a failing run with RapidCheck's shrinks (chunks of steps removed;
/// request lengths, accepted counts, which and the engine's limits moved
/// towards their smallest): a candidate is taken when it still fails with the
/// same property as `failing` did, until no candidate is taken or
/// `max_candidates` ran. Returns the smallest run found and its outcome.
std::pair<EngineRun, RunOutcome> shrink_run(EngineRun run, RunOutcome failing,
                                            const SubjectsFactory& subjects,
                                            int max_candidates = 4000,
                                            ShrinkStats* stats = nullptr);

/// "3 requests, 11 iterations, 0 finishes, 0 clears; max_batch_size=4 draft_len=2 ..."
std::string summarize(const EngineRun& run);

}  // namespace capcheck
