// capcheck._capcheck: the C++ core for Python (docs/python.md). A Python
// class with the TorchSubject methods becomes a LibTorch subject
// (Note [Python subjects]); the command line (`python3 -m capcheck`, and
// capcheck.run/check) is the CLI's own (src/cli); the graph facade of
// torch_graph.h backs the torch.cuda shim (capcheck/_shim.py).
//
// Note [Python subjects]
// ~~~~~~~~~~~~~~~~~~~~~~
// register_subject() makes a torch_subject_entry whose factory calls the
// Python factory, so a Python subject runs under every property, generator,
// token and report exactly as a C++ one. Every call into Python happens on
// the thread that called capcheck (the CLI runs there), with the GIL held.
// The Python torch and this module link one LibTorch, so the emulator's
// dispatcher fallback sees the ops the Python code issues. What the Python
// code raises is translated as the C++ adapter translates LibTorch's errors:
//   - capture errors keep their kinds: CaptureError (the facade's, below)
//     by its kind, a RuntimeError by its words (capture_error_kind), so a
//     host read during an emulated capture is 900 as on a GPU;
//   - KeyboardInterrupt stops the run at the case boundary (the CLI's stop
//     request), and capcheck.main() raises it again when the command returns;
//   - anything else is a SubjectError naming the Python type, its message
//     and the innermost frame, which a property reports as a failed verdict.
#include <pybind11/functional.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <pybind11/operators.h>
#include <torch/csrc/autograd/python_variable.h>
#include <torch/csrc/utils/pybind.h>  // at::Tensor <-> torch.Tensor

#include <atomic>
#include <set>
#include <cstdio>
#include <iostream>
#include <sstream>

#include "capcheck/errors.h"
#include "capcheck/generators.h"
#include "capcheck/scenario.h"
#include "capcheck/subject_registry.h"
#include "capcheck/token.h"
#include "capcheck/torch_graph.h"
#include "capcheck/torch_subject.h"
#include "cli.h"

namespace py = pybind11;

namespace capcheck::python {

namespace {

namespace tg = torch_graph;

std::atomic<bool> g_interrupted{false};
// The Python exception type of the facade's BackendErrors (capcheck.CaptureError).
py::object* g_capture_error = nullptr;
// Called before the first Python call of an emulated subject in a command
// (capcheck._shim activates the torch.cuda shim); reset by main().
py::object* g_activate_shim = nullptr;
bool g_shim_active = false;

// The torch.cuda shim, in place from the first call of an emulated subject
// in a command until the command returns (capcheck.main()).
void activate_shim() {
  if (g_shim_active || g_activate_shim == nullptr) return;
  g_shim_active = true;
  (*g_activate_shim)();
}

// "file.py:12 in capture": the innermost frame of a Python traceback.
std::string innermost_frame(const py::object& traceback) {
  if (traceback.is_none()) return "";
  py::object tb = traceback;
  while (!tb.attr("tb_next").is_none()) tb = tb.attr("tb_next");
  const py::object code = tb.attr("tb_frame").attr("f_code");
  return py::str(code.attr("co_filename")).cast<std::string>() + ":" +
         std::to_string(tb.attr("tb_lineno").cast<int>()) + " in " +
         py::str(code.attr("co_name")).cast<std::string>();
}

[[noreturn]] void translate(py::error_already_set& e, const std::string& subject,
                            const char* phase) {
  const std::string type = py::str(e.type().attr("__name__")).cast<std::string>();
  const std::string message = py::str(e.value()).cast<std::string>();
  if (e.matches(PyExc_KeyboardInterrupt)) {
    g_interrupted = true;
    cli::request_stop();
    throw UsageError("interrupted (KeyboardInterrupt in the subject's " + std::string(phase) + ")");
  }
  if (g_capture_error && py::isinstance(e.value(), *g_capture_error)) {
    const int kind = e.value().attr("kind").cast<int>();
    throw BackendError(static_cast<BackendErrorKind>(kind), phase,
                       "Python subject's " + std::string(phase) + ": " + message);
  }
  if (e.matches(PyExc_MemoryError)) throw std::bad_alloc();
  const BackendErrorKind kind = tg::capture_error_kind(std::runtime_error(message));
  if (kind == BackendErrorKind::kCaptureUnsupported || kind == BackendErrorKind::kCaptureInvalidated) {
    throw BackendError(kind, phase, "PyTorch raised in the subject's " + std::string(phase) + ": " + message);
  }
  const std::string where = innermost_frame(e.trace());
  throw SubjectError(subject, phase, "Python " + type,
                     message + (where.empty() ? "" : " (at " + where + ")"));
}

// Named tensors from what a Python method returned: a dict of name ->
// tensor, a sequence of (name, tensor) pairs, or one tensor ("output").
std::vector<NamedTensor> named_tensors(const py::handle& value, const std::string& subject,
                                       const char* method) {
  std::vector<NamedTensor> out;
  auto bad = [&](const std::string& why) {
    return SubjectError(subject, method, "a return value capcheck cannot read",
                        std::string(method) + "() must return a dict of name -> torch.Tensor, a "
                        "list of (name, tensor) pairs or one tensor; " + why);
  };
  auto tensor_of = [&](const py::handle& item, const std::string& name) {
    if (!THPVariable_Check(item.ptr())) {
      throw bad(name + " is a " + py::str(py::type::of(item).attr("__name__")).cast<std::string>());
    }
    return THPVariable_Unpack(item.ptr());
  };
  if (value.is_none()) return out;
  if (THPVariable_Check(value.ptr())) {
    out.push_back({"output", THPVariable_Unpack(value.ptr())});
  } else if (py::isinstance<py::dict>(value)) {
    for (const auto& [key, item] : value.cast<py::dict>()) {
      const std::string name = py::str(key).cast<std::string>();
      out.push_back({name, tensor_of(item, name)});
    }
  } else if (py::isinstance<py::sequence>(value) && !py::isinstance<py::str>(value)) {
    for (const py::handle item : value.cast<py::sequence>()) {
      if (!py::isinstance<py::sequence>(item) || py::len(item) != 2) {
        throw bad("an item is not a (name, tensor) pair");
      }
      const std::string name = py::str(item.cast<py::sequence>()[0]).cast<std::string>();
      out.push_back({name, tensor_of(item.cast<py::sequence>()[1], name)});
    }
  } else {
    throw bad("it returned a " + py::str(py::type::of(value).attr("__name__")).cast<std::string>());
  }
  return out;
}

class PythonSubject final : public TorchSubject {
 public:
  PythonSubject(py::object self, std::string name, bool emulated)
      : self_(std::move(self)), name_(std::move(name)), emulated_(emulated) {}
  ~PythonSubject() override {
    py::gil_scoped_acquire gil;
    self_ = py::object();
  }

  void reset() override { call("reset"); }
  void prepare(const Scenario& scenario) override { call("prepare", py::cast(scenario)); }
  std::vector<NamedTensor> persistent_tensors() const override {
    // The same tensors for the subject's life (the TorchSubject contract):
    // read once.
    if (!persistent_) persistent_ = named_tensors(call("persistent_tensors"), name_, "persistent_tensors");
    return *persistent_;
  }
  std::vector<NamedTensor> static_inputs() const override {
    if (!statics_) {
      statics_ = py::hasattr(self_, "static_inputs")
                     ? named_tensors(call("static_inputs"), name_, "static_inputs")
                     : std::vector<NamedTensor>{};
    }
    return *statics_;
  }
  void preprocess() override { call("preprocess"); }
  void postprocess() override { call("postprocess"); }
  std::vector<NamedTensor> forward() override { return named_tensors(call("forward"), name_, "forward"); }
  void capture() override { call("capture"); }
  std::vector<NamedTensor> replay() override { return named_tensors(call("replay"), name_, "replay"); }

 private:
  template <typename... Args>
  py::object call(const char* method, Args&&... args) const {
    py::gil_scoped_acquire gil;
    if (emulated_) activate_shim();
    try {
      return self_.attr(method)(std::forward<Args>(args)...);
    } catch (py::error_already_set& e) {
      translate(e, name_, method);
    }
  }

  py::object self_;
  std::string name_;
  bool emulated_;
  mutable std::optional<std::vector<NamedTensor>> persistent_, statics_;
};

// The configuration a Python factory receives.
struct FactoryConfig {
  py::object device;   // torch.device
  std::string graphs;  // "emulator" or "cuda"
  std::int32_t seqs_max = 0, tokens_max = 0;
  SubjectOptions options;
};

ScenarioFields parse_fields(const std::vector<std::string>& names) {
  static const std::vector<std::pair<std::string, ScenarioField>> known = {
      {"protocol", kFieldProtocol},       {"mutant", kFieldMutant},
      {"key", kFieldKey},                 {"warmups", kFieldWarmups},
      {"composition", kFieldComposition}, {"seq_lens", kFieldSeqLens},
      {"kv_lens", kFieldKvLens},          {"pos_offsets", kFieldPosOffsets},
      {"kv_offsets", kFieldKvOffsets},    {"input_ids", kFieldInputIds},
      {"position_ids", kFieldPositionIds}, {"draft_loop", kFieldDraftLoop},
      {"dummies", kFieldDummies}};
  ScenarioFields fields = 0;
  for (const std::string& name : names) {
    bool found = false;
    for (const auto& [n, bit] : known) {
      if (n == name) fields |= bit, found = true;
    }
    if (!found) {
      std::string all;
      for (const auto& k : known) all += (all.empty() ? "" : ", ") + k.first;
      throw UsageError("unknown scenario field '" + name + "'; the fields: " + all);
    }
  }
  return fields | kFieldKey;
}

void register_python_subject(const std::string& name, py::object factory,
                             const std::string& description,
                             const std::vector<std::tuple<std::string, std::string, std::vector<std::string>,
                                                          std::string>>& options,
                             const std::optional<std::vector<std::string>>& fields,
                             bool builtin_scenarios, const std::string& plugin,
                             const std::map<std::string, py::object>& ranges,
                             const std::vector<std::string>& unimplemented_mutants) {
  // Kept for the process's life: the registry outlives the interpreter's teardown.
  auto* held = new py::object(std::move(factory));
  std::vector<SubjectOption> declared;
  for (const auto& [option, help, values, default_value] : options) {
    declared.push_back({option, help, values, default_value});
  }
  SubjectEntry entry = torch_subject_entry(
      name, description,
      [held, name](const TorchSubjectOptions& o, const SubjectOptions& chosen) {
        py::gil_scoped_acquire gil;
        const bool emulated = o.graphs != tg::GraphDevice::kCuda;
        FactoryConfig config;
        config.device = py::module_::import("torch").attr("device")(o.device.str());
        config.graphs = emulated ? "emulator" : "cuda";
        config.seqs_max = o.limits.seqs_max;
        config.tokens_max = o.limits.tokens_max;
        config.options = chosen;
        if (emulated) activate_shim();
        try {
          py::object self = (*held)(config);
          return std::unique_ptr<TorchSubject>(std::make_unique<PythonSubject>(self, name, emulated));
        } catch (py::error_already_set& e) {
          translate(e, name, "construction");
        }
      },
      std::move(declared));
  if (fields) entry.fields = parse_fields(*fields);
  for (const std::string& mutant : unimplemented_mutants) {
    entry.unimplemented_mutants.push_back(parse_mutant(mutant));
  }
  if (!ranges.empty()) {
    // The subject's scenarios: the built-in generator with some ranges
    // narrowed (a transformation of gen_scenario; shrinking is its own).
    // Read once, at registration (a bad name fails here, not at the first run).
    std::vector<std::pair<std::string, std::int64_t>> narrowed;
    for (const auto& [name, value] : ranges) {
      static const std::set<std::string> known = {"batch_size_max", "draft_len_max", "warmups_max",
                                                  "draft_loop", "require_chunked"};
      if (!known.count(name)) {
        throw UsageError("ranges: unknown range '" + name + "'; the ranges: batch_size_max, "
                         "draft_len_max, warmups_max, draft_loop, require_chunked");
      }
      narrowed.emplace_back(name, value.cast<std::int64_t>());
    }
    auto apply = [narrowed](GenOptions& o) {
      for (const auto& [name, v] : narrowed) {
        const auto value = static_cast<std::int32_t>(v);
        if (name == "batch_size_max") o.batch_size_max = std::min(o.batch_size_max, value);
        else if (name == "draft_len_max") o.draft_len_max = std::min(o.draft_len_max, value);
        else if (name == "warmups_max") o.warmups_max = std::min(o.warmups_max, value);
        else if (name == "draft_loop") o.draft_loop = o.draft_loop && value != 0;
        else o.require_chunked = value != 0;
      }
    };
    entry.generator = [apply](const GenOptions& given, const SubjectOptions&) {
      GenOptions o = given;
      apply(o);
      return gen_scenario(o);
    };
  }
  entry.builtin_scenarios = builtin_scenarios;
  // Registered while load_plugin() runs the file: the registry names it.
  // Registered by an import (a test module): the file given.
  if (plugin_being_loaded().empty()) entry.plugin = plugin;
  // False only while load_plugin() runs the file: it reports the error then.
  (void)register_subject(std::move(entry));
}

// argv for the CLI: "capcheck" then `args`.
int run_command_line(const std::vector<std::string>& args) {
  std::vector<std::string> owned = {"capcheck"};
  owned.insert(owned.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& arg : owned) argv.push_back(arg.data());
  argv.push_back(nullptr);
  g_interrupted = false;
  const int code = cli::run_cli(static_cast<int>(owned.size()), argv.data(), false);
  std::cout.flush();
  std::cerr.flush();
  std::fflush(stdout);
  std::fflush(stderr);
  return code;
}

tg::GraphDevice graph_device(const std::string& name) {
  if (name == "emulator") return tg::GraphDevice::kEmulator;
  if (name == "cuda") return tg::GraphDevice::kCuda;
  if (name == "auto") return tg::GraphDevice::kAuto;
  throw UsageError("graph device '" + name + "': emulator, cuda or auto");
}

}  // namespace

}  // namespace capcheck::python

PYBIND11_MODULE(_capcheck, m) {
  using namespace capcheck;
  using namespace capcheck::python;
  m.doc() = "capcheck's C++ core: Python subjects, the command line, the graph facade";

  static py::exception<BackendError> capture_error(m, "CaptureError", PyExc_RuntimeError);
  g_capture_error = new py::object(capture_error);
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const BackendError& e) {
      py::object error = (*g_capture_error)(e.what());
      error.attr("kind") = e.code();
      error.attr("kind_name") = backend_error_kind_name(e.kind());
      PyErr_SetObject(g_capture_error->ptr(), error.ptr());
    } catch (const UsageError& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    }
  });

  py::class_<GraphKey>(m, "GraphKey")
      .def_readonly("batch_size", &GraphKey::batch_size)
      .def_readonly("draft_len", &GraphKey::draft_len)
      .def("__repr__", [](const GraphKey& k) {
        return "GraphKey(batch_size=" + std::to_string(k.batch_size) +
               ", draft_len=" + std::to_string(k.draft_len) + ")";
      });

  py::class_<Scenario>(m, "Scenario", "One engine state: a graph key, a batch, its metadata")
      .def_property_readonly("protocol", [](const Scenario& s) { return std::string(protocol_name(s.protocol)); })
      .def_property_readonly("mutant", [](const Scenario& s) { return std::string(mutant_name(s.mutant)); })
      .def_readonly("key", &Scenario::key)
      .def_property_readonly("batch_size", [](const Scenario& s) { return s.key.batch_size; })
      .def_property_readonly("draft_len", [](const Scenario& s) { return s.key.draft_len; })
      .def_readonly("warmups_count", &Scenario::warmups_count)
      .def_readonly("num_contexts", &Scenario::num_contexts)
      .def_readonly("num_chunked_ctx_requests", &Scenario::num_chunked_ctx_requests)
      .def_readonly("num_generations", &Scenario::num_generations)
      .def_readonly("seq_lens", &Scenario::seq_lens)
      .def_readonly("kv_lens", &Scenario::kv_lens)
      .def_readonly("previous_pos_id_offsets", &Scenario::previous_pos_id_offsets)
      .def_readonly("previous_kv_lens_offsets", &Scenario::previous_kv_lens_offsets)
      .def_readonly("input_ids", &Scenario::input_ids)
      .def_readonly("position_ids", &Scenario::position_ids)
      .def_readonly("draft_loop", &Scenario::draft_loop)
      .def_readonly("num_accepted_tokens", &Scenario::num_accepted_tokens)
      .def_readonly("num_dummy_requests", &Scenario::num_dummy_requests)
      .def("num_seqs", &Scenario::num_seqs)
      .def("num_tokens", &Scenario::num_tokens)
      .def("num_ctx_tokens", &Scenario::num_ctx_tokens)
      .def("kv_offsets_count", &Scenario::kv_offsets_count)
      .def("token_sequences", [](const Scenario& s) { return token_sequences(s); },
           "the request of each token (the engine's seq_ids)")
      .def("rejected_draft_tokens", [](const Scenario& s) { return rejected_draft_tokens(s); })
      .def("replay_copied_tokens", [](const Scenario& s) { return replay_copied_tokens(s); },
           "tokens a replay copies into the static inputs (one fewer under partial-static-copy)")
      .def("key_index", [](const Scenario& s) { return key_index(s.key); })
      .def("to_json", [](const Scenario& s) { return to_json(s); })
      .def_static("from_json", [](const std::string& text) { return from_json(text); })
      .def(py::self == py::self)
      .def("__repr__", [](const Scenario& s) { return summarize(s); });

  py::class_<FactoryConfig>(m, "SubjectConfig", "What a subject is built for")
      .def_readonly("device", &FactoryConfig::device, "torch.device of the tensors")
      .def_readonly("graphs", &FactoryConfig::graphs, "'emulator' or 'cuda'")
      .def_readonly("seqs_max", &FactoryConfig::seqs_max)
      .def_readonly("tokens_max", &FactoryConfig::tokens_max)
      .def_readonly("options", &FactoryConfig::options, "the subject's options (--option)");

  m.def("register_subject", &register_python_subject, py::arg("name"), py::arg("factory"),
        py::arg("description"), py::arg("options"), py::arg("fields"), py::arg("builtin_scenarios"),
        py::arg("plugin"), py::arg("ranges"), py::arg("unimplemented_mutants"));
  m.def("registered_subjects", [] {
    std::vector<std::string> names;
    for (const SubjectEntry* e : registered_subjects()) names.push_back(e->name);
    return names;
  });
  m.def("_set_plugin_loader", [](py::object loader) {
    auto* held = new py::object(std::move(loader));
    set_plugin_loader(".py", [held](const std::string& path) {
      py::gil_scoped_acquire gil;
      try {
        (*held)(path);
      } catch (py::error_already_set& e) {
        throw UsageError(py::str(e.type().attr("__name__")).cast<std::string>() + ": " +
                         py::str(e.value()).cast<std::string>() + " (at " +
                         innermost_frame(e.trace()) + ")");
      }
    });
  });
  m.def("_set_shim_activator", [](py::object activate) { g_activate_shim = new py::object(std::move(activate)); });
  m.def("_shim_active", [] { return g_shim_active; });
  m.def("_end_command", [] { g_shim_active = false; });
  m.def("main", &run_command_line, py::arg("args"),
        "runs one capcheck command line (without the program name); returns its exit code");
  m.def("_interrupted", [] { return g_interrupted.load(); });
  m.def("stop", [] { cli::request_stop(); }, "stops a running command at the next case boundary");

  m.def("encode_token", [](const Scenario& s, const std::string& subject, const SubjectOptions& options) {
    return encode_token(s, SubjectRef{subject, options});
  }, py::arg("scenario"), py::arg("subject") = "trtllm", py::arg("options") = SubjectOptions{});
  m.def("decode_token", [](const std::string& token) {
    const DecodedToken d = decode_subject_token(token);
    return py::make_tuple(d.scenario, d.subject.name, d.subject.options);
  }, "(scenario, subject name, subject options) of a cc2: or cc1: token");

  py::class_<tg::CUDAGraph>(m, "Graph", "The graph facade: the emulator, or at::cuda::CUDAGraph")
      .def(py::init([](const std::string& device) { return std::make_unique<tg::CUDAGraph>(graph_device(device)); }),
           py::arg("device") = "emulator")
      .def("capture_begin", [](tg::CUDAGraph& g, std::pair<unsigned long long, unsigned long long> pool) {
        g.capture_begin(pool);
      }, py::arg("pool") = std::pair<unsigned long long, unsigned long long>{0, 0})
      .def("capture_end", &tg::CUDAGraph::capture_end)
      .def("replay", &tg::CUDAGraph::replay)
      .def("reset", &tg::CUDAGraph::reset)
      .def("pool", &tg::CUDAGraph::pool)
      .def("recorded_ops", &tg::CUDAGraph::recorded_ops);
  m.def("graph_pool_handle", [](const std::string& device) { return tg::graph_pool_handle(graph_device(device)); },
        py::arg("device") = "emulator");
  m.def("weak_ref_tensor", [](const at::Tensor& t) {
    // No storage ownership: the block is free for the allocator (or a graph
    // pool) to hand out again while this alias still points at it.
    return at::from_blob(t.data_ptr(), t.sizes(), t.strides(), t.options());
  }, py::arg("tensor"),
        "a tensor over `tensor`'s memory that does not keep it alive (the weak-reference "
        "pattern of runners that save pool memory; reading it after the owner is gone reads "
        "whatever now holds the block)");
  m.def("is_current_stream_capturing", &tg::is_current_stream_capturing);
  m.def("synchronize", &tg::synchronize,
        "a host synchronization: invalidates an open emulated capture (900), as on CUDA");
  m.def("annotate", &tg::annotate, "labels the ops that follow in write explanations");
  m.def("cuda_graphs_available", [] { return tg::cuda_graphs_available(); });
}
