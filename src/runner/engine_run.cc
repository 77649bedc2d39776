#include "capcheck/engine_run.h"

#include <rapidcheck.h>

#include <algorithm>

#include "capcheck/detail/token_codec.h"
#include "capcheck/errors.h"

namespace capcheck {

namespace {

using detail::TokenReader;
using detail::TokenWriter;

using detail::kRunFormatVersion;

void write_config(TokenWriter& w, const sim::EngineConfig& c) {
  w.varint(static_cast<std::uint64_t>(c.max_batch_size));
  w.varint(static_cast<std::uint64_t>(c.max_num_tokens));
  w.varint(static_cast<std::uint64_t>(c.max_seq_len));
  w.varint(static_cast<std::uint64_t>(c.draft_len));
  w.varint(c.overlap_scheduler ? 1 : 0);
  w.varint(c.draft_loop ? 1 : 0);
  w.varint(c.chunked_prefill ? 1 : 0);
  w.varint(static_cast<std::uint64_t>(c.chunk_size));
  w.varint(c.use_cuda_graph ? 1 : 0);
  w.varint(c.cuda_graph_padding ? 1 : 0);
  w.array(c.cuda_graph_batch_sizes);
  w.varint(static_cast<std::uint64_t>(c.cuda_graph_max_batch_size));
  w.varint(static_cast<std::uint64_t>(c.capture));
  w.varint(c.acceptance_seed);
  w.varint(static_cast<std::uint64_t>(c.acceptance_percent));
  w.varint(static_cast<std::uint64_t>(c.vocab_size));
  w.varint(static_cast<std::uint64_t>(c.protocol));
  w.varint(static_cast<std::uint64_t>(c.mutant));
}

std::int32_t bounded(TokenReader& r, const char* field, std::uint64_t max) {
  const std::uint64_t value = r.varint(field);
  if (value > max) {
    throw UsageError(std::string("invalid run token: field ") + field + " is " +
                     std::to_string(value) + ", above the limit " + std::to_string(max));
  }
  return static_cast<std::int32_t>(value);
}

bool flag(TokenReader& r, const char* field) { return bounded(r, field, 1) == 1; }

sim::EngineConfig read_config(TokenReader& r) {
  sim::EngineConfig c;
  c.max_batch_size = bounded(r, "max_batch_size", kTokensMax);
  c.max_num_tokens = bounded(r, "max_num_tokens", kTokensMax);
  c.max_seq_len = bounded(r, "max_seq_len", sim::kMaxSeqLenMax);
  c.draft_len = bounded(r, "draft_len", kTokensMax);
  c.overlap_scheduler = flag(r, "overlap_scheduler");
  c.draft_loop = flag(r, "draft_loop");
  c.chunked_prefill = flag(r, "chunked_prefill");
  c.chunk_size = bounded(r, "chunk_size", kTokensMax);
  c.use_cuda_graph = flag(r, "use_cuda_graph");
  c.cuda_graph_padding = flag(r, "cuda_graph_padding");
  c.cuda_graph_batch_sizes = r.array("cuda_graph_batch_sizes");
  c.cuda_graph_max_batch_size = bounded(r, "cuda_graph_max_batch_size", kTokensMax);
  c.capture = static_cast<sim::CapturePolicy>(
      bounded(r, "capture", sim::kCapturePolicyCount - 1));
  c.acceptance_seed = r.varint("acceptance_seed");
  c.acceptance_percent = bounded(r, "acceptance_percent", 100);
  c.vocab_size = bounded(r, "vocab_size", sim::kVocabSizeMax);
  c.protocol = static_cast<Protocol>(bounded(r, "protocol", kProtocolCount - 1));
  c.mutant = static_cast<Mutant>(bounded(r, "mutant", kMutantCount - 1));
  return c;
}

std::string describe_step(const RunStep& step) {
  switch (step.kind) {
    case RunStep::Kind::kAddRequest:
      return "add_request(prompt_len=" + std::to_string(step.prompt_len) +
             ", max_new_tokens=" + std::to_string(step.max_new_tokens) + ")";
    case RunStep::Kind::kFinishRequest: return "finish_request(#" + std::to_string(step.which) + ")";
    case RunStep::Kind::kClearGraphs: return "clear_graphs()";
    case RunStep::Kind::kIterate: break;
  }
  return "iterate";
}

// What failed at an iteration, in the words of the graph runner's step.
std::string failing_step_label(const sim::Iteration& it, const Verdict& first) {
  const bool capture = it.action == sim::GraphAction::kCapture;
  const char* what = first.property == "capture_preserves_inputs" ? "the capture changed its inputs"
                     : capture ? "the first replay after the capture differs from eager"
                               : "the replay differs from eager";
  return "iteration " + std::to_string(it.index) + " (" + std::string(graph_action_name(it.action)) +
         " of key (" + std::to_string(it.key.batch_size) + "," +
         std::to_string(it.key.draft_len) + ")): " + what;
}

}  // namespace

std::string encode_run_token(const EngineRun& run) {
  sim::validate(run.config);
  validate(run.subject);
  if (run.steps.size() > kRunStepsMax) {
    throw UsageError("a run token holds at most " + std::to_string(kRunStepsMax) +
                     " steps; this run has " + std::to_string(run.steps.size()));
  }
  TokenWriter w;
  w.varint(kRunFormatVersion);
  detail::write_subject(w, run.subject);
  write_config(w, run.config);
  w.varint(run.steps.size());
  for (const RunStep& step : run.steps) {
    w.varint(static_cast<std::uint64_t>(step.kind));
    switch (step.kind) {
      case RunStep::Kind::kAddRequest:
        w.varint(static_cast<std::uint64_t>(step.prompt_len));
        w.varint(static_cast<std::uint64_t>(step.max_new_tokens));
        break;
      case RunStep::Kind::kIterate: w.array(step.accepted); break;
      case RunStep::Kind::kFinishRequest: w.varint(static_cast<std::uint64_t>(step.which)); break;
      case RunStep::Kind::kClearGraphs: break;
    }
  }
  return detail::frame(kRunTokenPrefix, w.payload());
}

EngineRun decode_run_token(std::string_view token) {
  const std::string bytes = detail::run_token_payload(token);
  TokenReader r(bytes);
  EngineRun run;
  run.subject = detail::read_run_header(r);
  run.config = read_config(r);
  const std::uint64_t steps = r.varint("steps");
  if (steps > kRunStepsMax) {
    throw UsageError("invalid run token: " + std::to_string(steps) + " steps, above the limit " +
                     std::to_string(kRunStepsMax));
  }
  for (std::uint64_t i = 0; i < steps; ++i) {
    RunStep step;
    step.kind = static_cast<RunStep::Kind>(bounded(r, "step kind", 3));
    switch (step.kind) {
      case RunStep::Kind::kAddRequest:
        step.prompt_len = bounded(r, "prompt_len", sim::kMaxSeqLenMax);
        step.max_new_tokens = bounded(r, "max_new_tokens", sim::kMaxSeqLenMax);
        break;
      case RunStep::Kind::kIterate: step.accepted = r.array("accepted"); break;
      case RunStep::Kind::kFinishRequest: step.which = bounded(r, "which", kTokensMax); break;
      case RunStep::Kind::kClearGraphs: break;
    }
    run.steps.push_back(std::move(step));
  }
  r.expect_end("run");
  try {
    sim::validate(run.config);
  } catch (const UsageError& e) {
    throw UsageError(std::string("invalid run token: ") + e.what());
  }
  return run;
}

RunOutcome replay_run(const EngineRun& run, const SubjectsFactory& subjects) {
  RunOutcome out;
  EngineRunner runner(subjects(), run.config);
  std::vector<Verdict> startup = runner.start();
  out.history.push_back("startup: " +
                        std::to_string(runner.engine().startup_captures().size()) +
                        " capture(s)");
  if (!startup.empty()) {
    out.label = "startup capture: the capture changed its inputs";
    const std::vector<Scenario> captures = runner.engine().startup_captures();
    for (const Scenario& s : captures) {
      const std::string note = "startup capture of batch size " + std::to_string(s.key.batch_size);
      const auto& notes = startup.front().notes;
      if (std::find(notes.begin(), notes.end(), note) != notes.end()) out.scenario = s;
    }
    out.failures = std::move(startup);
    return out;
  }
  for (std::size_t i = 0; i < run.steps.size(); ++i) {
    const RunStep& step = run.steps[i];
    sim::Engine& engine = runner.engine();
    try {
      switch (step.kind) {
        case RunStep::Kind::kAddRequest:
          engine.add_request(step.prompt_len, step.max_new_tokens);
          out.history.push_back(describe_step(step));
          continue;
        case RunStep::Kind::kFinishRequest:
          if (engine.live_requests().empty()) {
            out.history.push_back(describe_step(step) + ": no live request");
            continue;
          } else {
            const auto& live = engine.live_requests();
            const auto id = live[static_cast<std::size_t>(step.which) % live.size()];
            engine.finish_request(id);
            out.history.push_back(describe_step(step) + ": request " + std::to_string(id));
          }
          continue;
        case RunStep::Kind::kClearGraphs:
          runner.clear_graphs();
          out.history.push_back(describe_step(step));
          continue;
        case RunStep::Kind::kIterate: break;
      }
    } catch (const UsageError& e) {
      throw UsageError("run step " + std::to_string(i) + " (" + describe_step(step) +
                       "): " + e.what());
    }
    std::optional<IterationOutcome> outcome = runner.step(&step.accepted);
    if (!outcome) {
      out.history.push_back("(idle: no request can run)");
      continue;
    }
    ++out.iterations;
    out.history.push_back(outcome->iteration.describe() +
                          (outcome->failures.empty() ? "" : "  VIOLATED"));
    if (!outcome->failures.empty()) {
      out.step = static_cast<int>(i);
      out.label = failing_step_label(outcome->iteration, outcome->failures.front());
      out.scenario = outcome->iteration.scenario;
      out.failures = std::move(outcome->failures);
      return out;
    }
  }
  return out;
}

RunRecorder::RunRecorder(SubjectRef subject, sim::EngineConfig config) {
  run_.subject = std::move(subject);
  run_.config = std::move(config);
}

void RunRecorder::add_request(std::int32_t prompt_len, std::int32_t max_new_tokens) {
  RunStep step;
  step.kind = RunStep::Kind::kAddRequest;
  step.prompt_len = prompt_len;
  step.max_new_tokens = max_new_tokens;
  run_.steps.push_back(step);
}

void RunRecorder::iterate(const sim::Iteration* iteration) {
  RunStep step;
  step.kind = RunStep::Kind::kIterate;
  if (iteration) {
    const std::size_t real =
        static_cast<std::size_t>(iteration->num_generations - iteration->num_dummy_requests);
    step.accepted.assign(iteration->accepted.begin(),
                         iteration->accepted.begin() + static_cast<std::ptrdiff_t>(real));
    // Trailing zeros are implied: the shortest spelling of the same run.
    while (!step.accepted.empty() && step.accepted.back() == 0) step.accepted.pop_back();
  }
  run_.steps.push_back(std::move(step));
}

void RunRecorder::finish_request(std::int32_t which) {
  RunStep step;
  step.kind = RunStep::Kind::kFinishRequest;
  step.which = which;
  run_.steps.push_back(step);
}

void RunRecorder::clear_graphs() {
  RunStep step;
  step.kind = RunStep::Kind::kClearGraphs;
  run_.steps.push_back(step);
}

namespace {

// RapidCheck's shrinks of one step: shorter requests, fewer accepted tokens
// (trailing rows dropped first: they accept 0), a smaller live index.
rc::Seq<RunStep> shrink_step(const RunStep& step) {
  auto with = [step](auto set) {
    return [step, set](auto value) {
      RunStep s = step;
      set(s, value);
      return s;
    };
  };
  switch (step.kind) {
    case RunStep::Kind::kAddRequest:
      return rc::seq::concat(
          rc::seq::map(rc::shrink::towards<std::int32_t>(step.prompt_len, 1),
                       with([](RunStep& s, std::int32_t v) { s.prompt_len = v; })),
          rc::seq::map(rc::shrink::towards<std::int32_t>(step.max_new_tokens, 1),
                       with([](RunStep& s, std::int32_t v) { s.max_new_tokens = v; })));
    case RunStep::Kind::kIterate:
      return rc::seq::map(
          rc::seq::concat(rc::shrink::removeChunks(step.accepted),
                          rc::shrink::eachElement(step.accepted, [](std::int32_t v) {
                            return rc::shrink::towards<std::int32_t>(v, 0);
                          })),
          with([](RunStep& s, const std::vector<std::int32_t>& v) { s.accepted = v; }));
    case RunStep::Kind::kFinishRequest:
      return rc::seq::map(rc::shrink::towards<std::int32_t>(step.which, 0),
                          with([](RunStep& s, std::int32_t v) { s.which = v; }));
    case RunStep::Kind::kClearGraphs: break;
  }
  return rc::Seq<RunStep>();
}

// Smaller engines: fewer requests per iteration, shorter drafts, fewer tokens
// and graph sizes. A candidate the simulator refuses simply does not fail.
rc::Seq<sim::EngineConfig> shrink_config(const sim::EngineConfig& config) {
  auto with = [config](auto set) {
    return [config, set](auto value) {
      sim::EngineConfig c = config;
      set(c, value);
      return c;
    };
  };
  using C = sim::EngineConfig;
  return rc::seq::concat(
      rc::seq::map(rc::shrink::towards<std::int32_t>(config.max_batch_size, 1),
                   with([](C& c, std::int32_t v) { c.max_batch_size = v; })),
      rc::seq::map(rc::shrink::towards<std::int32_t>(config.draft_len, 0),
                   with([](C& c, std::int32_t v) { c.draft_len = v; })),
      rc::seq::map(rc::shrink::towards<std::int32_t>(config.cuda_graph_max_batch_size, 1),
                   with([](C& c, std::int32_t v) { c.cuda_graph_max_batch_size = v; })),
      rc::seq::map(rc::shrink::removeChunks(config.cuda_graph_batch_sizes),
                   with([](C& c, const std::vector<std::int32_t>& v) {
                     c.cuda_graph_batch_sizes = v;
                   })),
      rc::seq::map(rc::shrink::towards<std::int32_t>(config.max_num_tokens, 1),
                   with([](C& c, std::int32_t v) { c.max_num_tokens = v; })),
      rc::seq::map(rc::shrink::towards<std::int32_t>(config.chunk_size, 1),
                   with([](C& c, std::int32_t v) { c.chunk_size = v; })));
}

rc::Seq<EngineRun> shrink_candidates(const EngineRun& run) {
  auto with_steps = [run](std::vector<RunStep> steps) {
    EngineRun r = run;
    r.steps = std::move(steps);
    return r;
  };
  auto with_config = [run](sim::EngineConfig config) {
    EngineRun r = run;
    r.config = std::move(config);
    return r;
  };
  return rc::seq::concat(rc::seq::map(rc::shrink::removeChunks(run.steps), with_steps),
                         rc::seq::map(shrink_config(run.config), with_config),
                         rc::seq::map(rc::shrink::eachElement(run.steps, shrink_step), with_steps));
}

}  // namespace

std::pair<EngineRun, RunOutcome> shrink_run(EngineRun run, RunOutcome failing,
                                            const SubjectsFactory& subjects, int max_candidates,
                                            ShrinkStats* stats) {
  CAPCHECK_ASSERT(failing.failed());
  ShrinkStats local;
  ShrinkStats& st = stats ? *stats : local;
  const std::string property = failing.failures.front().property;
  // Steps after the failing one never ran.
  if (failing.step >= 0) run.steps.resize(static_cast<std::size_t>(failing.step) + 1);
  if (failing.step < 0) run.steps.clear();
  bool progress = true;
  while (progress && !(st.budget_exhausted = st.candidates_tried >= max_candidates)) {
    progress = false;
    rc::Seq<EngineRun> candidates = shrink_candidates(run);
    while (rc::Maybe<EngineRun> candidate = candidates.next()) {
      if (st.candidates_tried >= max_candidates) break;
      ++st.candidates_tried;
      RunOutcome outcome;
      try {
        outcome = replay_run(*candidate, subjects);
      } catch (const UsageError&) {
        continue;  // a run the simulator refuses is no counterexample
      }
      if (!outcome.failed() || outcome.failures.front().property != property) continue;
      run = std::move(*candidate);
      if (outcome.step >= 0) run.steps.resize(static_cast<std::size_t>(outcome.step) + 1);
      failing = std::move(outcome);
      ++st.accepted;
      progress = true;
      break;
    }
  }
  return {std::move(run), std::move(failing)};
}

std::string summarize(const EngineRun& run) {
  int adds = 0, iterations = 0, finishes = 0, clears = 0;
  for (const RunStep& s : run.steps) {
    adds += s.kind == RunStep::Kind::kAddRequest;
    iterations += s.kind == RunStep::Kind::kIterate;
    finishes += s.kind == RunStep::Kind::kFinishRequest;
    clears += s.kind == RunStep::Kind::kClearGraphs;
  }
  const sim::EngineConfig& c = run.config;
  return std::to_string(adds) + " request(s), " + std::to_string(iterations) +
         " iteration(s), " + std::to_string(finishes) + " finish(es), " + std::to_string(clears) +
         " clear(s); max_batch_size=" + std::to_string(c.max_batch_size) +
         " max_num_tokens=" + std::to_string(c.max_num_tokens) +
         " draft_len=" + std::to_string(c.draft_len) + " draft_loop=" +
         (c.draft_loop ? "on" : "off") + " capture=" +
         std::string(sim::capture_policy_name(c.capture)) +
         " protocol=" + std::string(protocol_name(c.protocol)) +
         " mutant=" + std::string(mutant_name(c.mutant));
}

}  // namespace capcheck
