// Note [the capture emulator]
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~
// CUDA graph semantics for arbitrary LibTorch programs on a CPU. While a
// capture is open, the capturing thread's TLS includes the dispatch key
// TESTING_ONLY_GenericMode, whose boxed fallback (below) sees every op before
// any kernel runs. It runs each recorded op on *shadows* (a copy of each
// storage that existed before the capture, and the shadow results of earlier
// ops; a tensor's shadow is its geometry on its storage's shadow), which
// gives every output its true shape, dtype and strides without touching a
// captured tensor and without reading poisoned values (an index computed in
// the capture is a real index in the shadow world). Then:
//   - a view op (a return aliasing an argument, nothing written) also runs on
//     the real tensor, eagerly: no kernel, aliasing kept;
//   - an in-place or out= op (an argument written) is recorded; it returns the
//     real argument, unchanged until a replay;
//   - any other op is recorded with new real outputs, poisoned.
// Replay calls each recorded op again with its recorded arguments, the key
// excluded, and copies functional results into the recorded outputs, so
// outputs keep their addresses and in-place updates accumulate.
//
// Note [shared pools]
// ~~~~~~~~~~~~~~~~~~~
// Graphs captured with one pool id share memory the way the CUDA caching
// allocator's private pools do: a block that nothing but graphs refers to any
// more (an intermediate of graph A, or an output of A whose owner dropped
// every owning tensor, keeping at most a non-owning alias such as a from_blob
// view of its address) is free, and a later capture into the same pool may
// hand it out again. Both graphs then write the same memory at replay, so a
// replay of B overwrites what A returned. A block is free when its tensor is
// referenced only by the graphs' records and the pool itself, and its storage
// only by that tensor. Within one capture blocks are never reused (the
// emulator keeps every intermediate), which is safe: reuse within a graph
// never changes values.
//
// The same ops also serve the WriteTrace: while one is active and no capture
// is open, the fallback runs each op for real and notes the bytes its written
// arguments (or its new outputs) cover.
#include "capcheck/torch_graph.h"

#include <ATen/core/dispatch/Dispatcher.h>
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <torch/library.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "capcheck/errors.h"
#include "cuda_graph.h"

namespace capcheck::torch_graph {

namespace {

constexpr c10::DispatchKey kCaptureKey = c10::DispatchKey::TESTING_ONLY_GenericMode;

// Runs dispatcher calls below the emulator (the real kernels).
struct BelowEmulator {
  c10::impl::ExcludeDispatchKeyGuard guard{kCaptureKey};
};

enum class Kind { kFunctional, kMutating };

struct RecordedOp {
  c10::OperatorHandle op;
  std::vector<c10::IValue> arguments;
  Kind kind;
  std::vector<c10::IValue> outputs;  // functional ops: the real outputs, in return order
};

std::string op_name(const c10::OperatorHandle& op) {
  const auto& name = op.schema().operator_name();
  return name.overload_name.empty() ? name.name : name.name + "." + name.overload_name;
}

// Ops whose output shape depends on the data, or that read a value back: on
// CUDA they synchronize with the host, which a capture forbids.
const std::set<std::string>& host_read_ops() {
  static const std::set<std::string> ops = {
      "aten::_local_scalar_dense", "aten::item",          "aten::nonzero",
      "aten::nonzero_numpy",       "aten::argwhere",      "aten::masked_select",
      "aten::unique",              "aten::_unique",       "aten::_unique2",
      "aten::unique_dim",          "aten::unique_consecutive",
      "aten::unique_dim_consecutive", "aten::bincount",  "aten::repeat_interleave",
      "aten::_assert_async"};
  return ops;
}

bool is_tensor_type(const c10::TypePtr& type) {
  if (type->kind() == c10::TypeKind::TensorType) return true;
  if (auto list = type->cast<c10::ListType>()) return is_tensor_type(list->getElementType());
  if (auto optional = type->cast<c10::OptionalType>()) return is_tensor_type(optional->getElementType());
  return false;
}

// `value` with every tensor in it (a tensor, a tensor list, a list of
// optional tensors) replaced by f(tensor).
template <typename F>
c10::IValue map_tensors(const c10::IValue& value, F&& f) {
  if (value.isTensor()) return f(value.toTensor());
  if (value.isTensorList()) {
    c10::List<at::Tensor> out;
    for (const at::Tensor& t : value.toTensorList()) out.push_back(f(t));
    return out;
  }
  if (value.isList()) {
    const auto list = value.toList();
    bool tensors = false;
    for (const c10::IValue& e : list) tensors = tensors || e.isTensor();
    if (!tensors) return value;
    c10::List<c10::optional<at::Tensor>> out;
    for (const c10::IValue& e : list) {
      out.push_back(e.isNone() ? c10::optional<at::Tensor>() : c10::optional<at::Tensor>(f(e.toTensor())));
    }
    return out;
  }
  return value;
}

// f(tensor) for every tensor in `value` (a tensor, or a list holding tensors),
// without copying the list or taking references.
template <typename F>
void for_each_tensor(const c10::IValue& value, F&& f) {
  if (value.isTensor()) {
    f(value.toTensor());
  } else if (value.isTensorList() || value.isList()) {
    for (const c10::IValue& e : value.toListRef()) {
      if (e.isTensor()) f(e.toTensor());
    }
  }
}

void poison(const at::Tensor& t) {
  if (!t.defined() || t.numel() == 0) return;
  BelowEmulator below;
  if (at::isFloatingType(t.scalar_type()) || at::isComplexType(t.scalar_type())) {
    t.fill_(std::numeric_limits<double>::quiet_NaN());
  } else {
    // A fresh output (storage offset 0): every byte of its storage.
    std::memset(t.data_ptr(), 0xA5, t.storage().nbytes());
  }
}

std::atomic<unsigned long long> g_next_pool{1};

// The bytes a tensor's elements cover, [begin, end); {0, 0} when it has none.
std::pair<std::uintptr_t, std::uintptr_t> byte_range(const at::Tensor& t) {
  if (!t.defined() || !t.has_storage() || t.numel() == 0) return {0, 0};
  std::int64_t low = 0, high = 0;
  for (std::int64_t d = 0; d < t.dim(); ++d) {
    const std::int64_t span = (t.size(d) - 1) * t.stride(d);
    (span < 0 ? low : high) += span;
  }
  const auto item = static_cast<std::int64_t>(t.element_size());
  const auto base = reinterpret_cast<std::uintptr_t>(t.data_ptr());
  return {base + static_cast<std::uintptr_t>(low * item),
          base + static_cast<std::uintptr_t>((high + 1) * item)};
}

thread_local WriteTrace* t_trace = nullptr;

void note_write(WriteTrace& trace, const std::string& op, const at::Tensor& t, int graph_op = 0,
                int graph_ops = 0) {
  const auto [begin, end] = byte_range(t);
  if (begin == end) return;
  trace.record(WriteTrace::Record{&op, trace.phase_index(), graph_op, graph_ops, begin, end});
}

// The tensors an op's schema says it writes (self of add_, out= arguments).
template <typename F>
void for_each_written(const c10::FunctionSchema& schema, const std::vector<c10::IValue>& arguments,
                      F&& f) {
  for (std::size_t j = 0; j < schema.arguments().size() && j < arguments.size(); ++j) {
    const c10::AliasInfo* info = schema.arguments()[j].alias_info();
    if (info && info->isWrite()) for_each_tensor(arguments[j], f);
  }
}

// What the fallback needs to know of an op, worked out once per operator
// (schemas live as long as the process): its name, whether it writes an
// argument, whether a return aliases one, and why it cannot be captured.
struct OpInfo {
  std::string name;
  bool writes = false;
  bool aliases = false;
  bool host_read = false;
  bool random = false;
  std::string host_return;  // the type of a non-tensor return, if any
};

const std::set<std::string>& random_ops() {
  static const std::set<std::string> ops = {
      "aten::rand", "aten::rand_like", "aten::randn", "aten::randn_like", "aten::randint",
      "aten::randint_like", "aten::randperm", "aten::bernoulli", "aten::bernoulli_",
      "aten::multinomial", "aten::normal", "aten::normal_", "aten::uniform_", "aten::random_",
      "aten::exponential_", "aten::geometric_", "aten::cauchy_", "aten::log_normal_",
      "aten::poisson", "aten::dropout", "aten::native_dropout", "aten::rrelu",
      "aten::rrelu_with_noise"};
  return ops;
}

const OpInfo& op_info(const c10::OperatorHandle& op) {
  thread_local std::unordered_map<const c10::FunctionSchema*, OpInfo> cache;
  const c10::FunctionSchema& schema = op.schema();
  auto it = cache.find(&schema);
  if (it != cache.end()) return it->second;
  OpInfo info;
  info.name = op_name(op);
  info.host_read = host_read_ops().count(schema.operator_name().name) > 0;
  info.random = random_ops().count(schema.operator_name().name) > 0;
  for (const auto& argument : schema.arguments()) {
    info.random = info.random || argument.type()->str().find("Generator") != std::string::npos;
    info.writes = info.writes || (argument.alias_info() && argument.alias_info()->isWrite());
  }
  for (const auto& ret : schema.returns()) {
    info.aliases = info.aliases || ret.alias_info() != nullptr;
    if (!is_tensor_type(ret.type()) && info.host_return.empty()) info.host_return = ret.type()->str();
  }
  return cache.emplace(&schema, std::move(info)).first->second;
}

}  // namespace

namespace {

// The blocks of every shared pool (Note [shared pools]).
struct PoolBlock {
  at::Tensor tensor;       // the pool's own reference
  std::size_t records = 0;  // references the owning graph's records hold
  const void* graph = nullptr;
};
struct Pools {
  std::mutex mutex;
  std::map<MempoolId_t, std::vector<PoolBlock>> blocks;
};
Pools& pools() {
  static Pools* p = new Pools;  // never destroyed: graphs may outlive statics
  return *p;
}

}  // namespace

struct CUDAGraph::State {
  enum class Capture { kNone, kActive, kInvalidated, kCaptured };
  Capture capture = Capture::kNone;
  MempoolId_t pool{0, 0};
  std::vector<RecordedOp> ops;
  std::string invalidated_by;
  // During capture: each real storage -> its shadow storage (kept with the
  // real one, so its address cannot be reused while the map holds it). A
  // tensor's shadow is the same geometry on the shadow storage, so views of
  // one storage alias alike in both worlds, whatever TensorImpl the caller
  // holds (autograd wrappers make new ones).
  struct Shadow {
    c10::Storage real;
    at::Tensor base;      // any tensor on the shadow storage
    std::int64_t delta;   // shadow offset - real offset, in elements
  };
  std::unordered_map<const c10::StorageImpl*, Shadow> shadows;
  // After capture: storages captured from outside, with what they were.
  struct External {
    c10::Storage storage;
    std::size_t nbytes;
    const void* data;
    std::string op;
    // The tensors on it that the records hold, with how many references the
    // records hold to each (fixed once the capture ends).
    std::vector<std::pair<c10::TensorImpl*, std::size_t>> held;
  };
  std::vector<External> externals;
  bool was_included = false;
  bool shared_pool = false;  // captured with a pool id the caller gave
  GraphDevice device = GraphDevice::kEmulator;
  std::unique_ptr<RealGraph> real;  // kCuda: the at::cuda::CUDAGraph
  // During capture: blocks of the shared pool handed out to this graph.
  std::unordered_set<const c10::StorageImpl*> reused;

  at::Tensor shadow_of(const at::Tensor& t) {
    if (!t.defined() || !t.has_storage()) return t;
    BelowEmulator below;
    const c10::StorageImpl* key = t.storage().unsafeGetStorageImpl();
    auto it = shadows.find(key);
    if (it == shadows.end()) {
      // A storage from before the capture: a copy of all of it, so the ops
      // of the capture see its values but never write its memory.
      const auto itemsize = static_cast<std::int64_t>(t.element_size());
      at::Tensor base = at::empty({static_cast<std::int64_t>(t.storage().nbytes()) / itemsize},
                                  t.options().memory_format(c10::nullopt));
      if (t.storage().nbytes() > 0) std::memcpy(base.data_ptr(), t.storage().data(), t.storage().nbytes());
      it = shadows.emplace(key, Shadow{t.storage(), base, 0}).first;
    }
    const Shadow& shadow = it->second;
    if (shadow.base.scalar_type() != t.scalar_type()) {
      return t.clone();  // a reinterpreting view: its values, unshared
    }
    return shadow.base.as_strided(t.sizes(), t.strides(), t.storage_offset() + shadow.delta);
  }
  void set_shadow(const at::Tensor& real, const at::Tensor& shadow) {
    shadows[real.storage().unsafeGetStorageImpl()] =
        Shadow{real.storage(), shadow, shadow.storage_offset() - real.storage_offset()};
  }
};

namespace {

thread_local CUDAGraph::State* t_capturing = nullptr;

// Bytes an empty_strided tensor of this geometry needs.
std::size_t needed_bytes(const at::Tensor& like) {
  std::int64_t extent = 1;
  for (std::int64_t d = 0; d < like.dim(); ++d) {
    if (like.size(d) == 0) return 0;
    extent += (like.size(d) - 1) * like.stride(d);
  }
  return static_cast<std::size_t>(extent) * like.element_size();
}

// A new output shaped like `shadow`: a free block of the graph's shared pool
// when there is one big enough (the smallest such), else new memory
// (Note [shared pools]).
at::Tensor allocate_output(CUDAGraph::State& state, const at::Tensor& shadow) {
  BelowEmulator below;
  const std::size_t bytes = needed_bytes(shadow);
  if (state.shared_pool && bytes > 0) {
    Pools& p = pools();
    std::lock_guard<std::mutex> lock(p.mutex);
    PoolBlock* best = nullptr;
    for (PoolBlock& block : p.blocks[state.pool]) {
      const c10::TensorImpl* impl = block.tensor.unsafeGetTensorImpl();
      const c10::StorageImpl* storage = block.tensor.storage().unsafeGetStorageImpl();
      const bool free = block.graph != &state &&
                        c10::raw::intrusive_ptr::use_count(const_cast<c10::TensorImpl*>(impl)) ==
                            block.records + 1 &&
                        block.tensor.storage().use_count() == 1 && !state.reused.count(storage) &&
                        !state.shadows.count(storage);
      const std::size_t size = block.tensor.storage().nbytes();
      if (free && size >= bytes && (!best || size < best->tensor.storage().nbytes())) best = &block;
    }
    if (best) {
      state.reused.insert(best->tensor.storage().unsafeGetStorageImpl());
      at::Tensor out = at::empty({0}, shadow.options());
      out.set_(best->tensor.storage(), 0, shadow.sizes(), shadow.strides());
      return out;
    }
  }
  return at::empty_strided(shadow.sizes(), shadow.strides(), shadow.options());
}

// A graph that is reset or destroyed gives its blocks back: nothing of it
// replays any more.
void forget_pool_blocks(CUDAGraph::State& state) {
  if (!state.shared_pool) return;
  Pools& p = pools();
  std::lock_guard<std::mutex> lock(p.mutex);
  auto it = p.blocks.find(state.pool);
  if (it == p.blocks.end()) return;
  auto& blocks = it->second;
  blocks.erase(std::remove_if(blocks.begin(), blocks.end(),
                              [&](const PoolBlock& b) { return b.graph == &state; }),
               blocks.end());
  if (blocks.empty()) p.blocks.erase(it);
}

// What the WriteTrace sees outside a capture: the op runs for real, and the
// bytes it wrote are noted.
void traced_call(WriteTrace& trace, const c10::OperatorHandle& op, torch::jit::Stack* stack) {
  const OpInfo& info = op_info(op);
  const auto& schema = op.schema();
  const std::size_t argument_count = schema.arguments().size();
  thread_local std::vector<at::Tensor> written;
  written.clear();
  if (info.writes) {
    for (std::size_t j = 0; j < argument_count; ++j) {
      const c10::AliasInfo* alias = schema.arguments()[j].alias_info();
      if (!alias || !alias->isWrite()) continue;
      for_each_tensor((*stack)[stack->size() - argument_count + j],
                      [&](const at::Tensor& t) { written.push_back(t); });
    }
  }
  {
    BelowEmulator below;
    op.callBoxed(stack);
  }
  for (const at::Tensor& t : written) note_write(trace, info.name, t);
  written.clear();
  if (!info.writes && !info.aliases) {
    for (const c10::IValue& result : *stack) {
      for_each_tensor(result, [&](const at::Tensor& t) { note_write(trace, info.name, t); });
    }
  }
}

[[noreturn]] void invalidate(CUDAGraph::State& state, const std::string& op, const std::string& why) {
  state.capture = CUDAGraph::State::Capture::kInvalidated;
  state.invalidated_by = op + ": " + why;
  throw_backend_error(BackendErrorKind::kCaptureUnsupported, op,
                      "operation not permitted when stream is capturing: " + why);
}

void capture_fallback(const c10::OperatorHandle& op, torch::jit::Stack* stack) {
  CUDAGraph::State* state = t_capturing;
  if (!state) {  // the key is included by an open capture or a trace
    if (t_trace && !real_capture_active()) {
      traced_call(*t_trace, op, stack);
      return;
    }
    BelowEmulator below;
    op.callBoxed(stack);
    return;
  }
  const OpInfo& info = op_info(op);
  const std::string& name = info.name;
  if (state->capture == CUDAGraph::State::Capture::kInvalidated) {
    throw_backend_error(BackendErrorKind::kCaptureInvalidated, name,
                        "operation failed due to a previous error during capture (" +
                            state->invalidated_by + ")");
  }
  const auto& schema = op.schema();
  const std::size_t argument_count = schema.arguments().size();
  if (info.host_read) {
    invalidate(*state, name, "it reads device values on the host (a synchronization)");
  }
  if (!info.host_return.empty()) {
    invalidate(*state, name, "it returns a host value (" + info.host_return + ")");
  }
  if (info.random) {
    invalidate(*state, name,
               "random number generation is not modelled by the capture emulator (stub it, or "
               "draw the values before the capture)");
  }
  const bool writes = info.writes;
  const bool aliases = info.aliases;

  std::vector<c10::IValue> arguments(stack->end() - static_cast<std::ptrdiff_t>(argument_count),
                                     stack->end());
  torch::jit::drop(*stack, argument_count);

  if (aliases && !writes) {
    // A view: runs for real (no kernel, no data touched); its shadow is the
    // same geometry on its storage's shadow. An op whose schema only *may*
    // alias (`to`, `reshape`, `contiguous`) and that made a copy is not a
    // view: it is recorded like any other op, below.
    torch::jit::Stack real_stack(arguments.begin(), arguments.end());
    {
      BelowEmulator below;
      op.callBoxed(&real_stack);
    }
    std::unordered_set<const c10::StorageImpl*> argument_storages;
    for (const auto& a : arguments) {
      for_each_tensor(a, [&](const at::Tensor& t) {
        if (t.defined() && t.has_storage()) argument_storages.insert(t.storage().unsafeGetStorageImpl());
      });
    }
    bool all_alias = true;
    for (const c10::IValue& result : real_stack) {
      for_each_tensor(result, [&](const at::Tensor& t) {
        all_alias = all_alias && t.defined() && t.has_storage() &&
                    argument_storages.count(t.storage().unsafeGetStorageImpl()) > 0;
      });
    }
    if (all_alias) {
      for (const c10::IValue& result : real_stack) stack->push_back(result);
      return;
    }
  }
  // The shadow run: true shapes, and the values later ops of the capture
  // depend on (an index computed in the capture is a real index here).
  torch::jit::Stack shadow_stack;
  for (const auto& a : arguments) {
    shadow_stack.push_back(map_tensors(a, [&](const at::Tensor& t) { return state->shadow_of(t); }));
  }
  {
    BelowEmulator below;
    op.callBoxed(&shadow_stack);
  }
  RecordedOp recorded{op, arguments, writes ? Kind::kMutating : Kind::kFunctional, {}};
  if (writes) {
    // Returns are the written arguments themselves (self, out=).
    for (const auto& ret : schema.returns()) {
      const c10::AliasInfo* info = ret.alias_info();
      std::size_t match = argument_count;
      for (std::size_t j = 0; info && j < argument_count; ++j) {
        const c10::AliasInfo* a = schema.arguments()[j].alias_info();
        if (a && a->beforeSets() == info->beforeSets()) match = j;
      }
      if (match == argument_count) {
        invalidate(*state, name, "an op that writes an argument and also returns a new tensor is "
                                 "not modelled by the capture emulator");
      }
      stack->push_back(arguments[match]);
    }
  } else {
    for (const c10::IValue& result : shadow_stack) {
      c10::IValue real = map_tensors(result, [&](const at::Tensor& shadow) {
        BelowEmulator below;
        at::Tensor out = allocate_output(*state, shadow);
        poison(out);
        state->set_shadow(out, shadow);
        return out;
      });
      recorded.outputs.push_back(real);
      stack->push_back(real);
    }
  }
  state->ops.push_back(std::move(recorded));
}

}  // namespace

TORCH_LIBRARY_IMPL(_, TESTING_ONLY_GenericMode, m) {
  m.fallback(torch::CppFunction::makeFromBoxedFunction<&capture_fallback>());
}

GraphDevice default_graph_device() {
  static const GraphDevice resolved = [] {
    const char* env = std::getenv("CAPCHECK_GRAPH_DEVICE");
    const std::string choice = env ? env : "";
    if (choice == "emulator") return GraphDevice::kEmulator;
    if (choice == "cuda") return GraphDevice::kCuda;
    return cuda_graphs_available() ? GraphDevice::kCuda : GraphDevice::kEmulator;
  }();
  return resolved;
}

namespace {
GraphDevice resolve(GraphDevice device) {
  if (device == GraphDevice::kAuto) device = default_graph_device();
  if (device == GraphDevice::kCuda) {
    std::string why;
    if (!cuda_graphs_available(&why)) {
      throw_backend_error(BackendErrorKind::kUnavailable, "CUDAGraph", "CUDA graphs: " + why);
    }
  }
  return device;
}
}  // namespace

MempoolId_t graph_pool_handle(GraphDevice device) {
  if (resolve(device) == GraphDevice::kCuda) return real_graph_pool_handle();
  return {0, g_next_pool.fetch_add(1)};
}

bool is_current_stream_capturing() { return t_capturing != nullptr || real_capture_active(); }

void synchronize() {
  if (t_capturing) invalidate(*t_capturing, "synchronize", "a device synchronization");
  real_synchronize();
}

CaptureStream getStreamFromPool(GraphDevice device) {
  if (resolve(device) == GraphDevice::kCuda) return CaptureStream{real_stream_from_pool()};
  return CaptureStream{};
}

StreamGuard::StreamGuard(const CaptureStream& stream) : current_(stream.stream) {
  if (current_.device_type() == c10::kCUDA) previous_ = enter_real_stream(current_);
}

StreamGuard::~StreamGuard() {
  if (current_.device_type() == c10::kCUDA) exit_real_stream(previous_, current_);
}

BackendErrorKind capture_error_kind(const std::exception& error) {
  if (const auto* backend = dynamic_cast<const BackendError*>(&error)) return backend->kind();
  const std::string what = error.what();
  // CUDA's own words (cudaErrorStreamCaptureInvalidated, ...Unsupported), and
  // LibTorch's refusals of ops during a capture ("... during CUDA graph capture").
  if (what.find("invalidated") != std::string::npos ||
      what.find("previous error during capture") != std::string::npos) {
    return BackendErrorKind::kCaptureInvalidated;
  }
  if (what.find("stream is capturing") != std::string::npos ||
      what.find("CaptureUnsupported") != std::string::npos ||
      what.find("graph capture") != std::string::npos) {
    return BackendErrorKind::kCaptureUnsupported;
  }
  return BackendErrorKind::kDevice;
}

WriteTrace::~WriteTrace() {
  if (active_) stop();
}

void WriteTrace::start() {
  if (t_trace && t_trace != this) {
    throw_backend_error(BackendErrorKind::kIllegalState, "WriteTrace::start",
                        "another trace is active on this thread");
  }
  records_.clear();
  phases_.clear();
  if (active_) return;
  active_ = true;
  was_included_ = c10::impl::tls_is_dispatch_key_included(kCaptureKey);
  c10::impl::tls_set_dispatch_key_included(kCaptureKey, true);
  t_trace = this;
}

void WriteTrace::stop() {
  if (!active_) return;
  active_ = false;
  if (!t_capturing) c10::impl::tls_set_dispatch_key_included(kCaptureKey, was_included_);
  t_trace = nullptr;
}

void annotate(std::string phase) {
  if (t_trace) t_trace->set_phase(std::move(phase));
}

std::uint32_t WriteTrace::phase_index() {
  if (phases_.empty() || phases_.back() != phase_) phases_.push_back(phase_);
  return static_cast<std::uint32_t>(phases_.size() - 1);
}

std::optional<WriteTrace::Write> WriteTrace::last_write(const void* address) const {
  const auto at = reinterpret_cast<std::uintptr_t>(address);
  for (auto it = records_.rbegin(); it != records_.rend(); ++it) {
    if (it->begin > at || at >= it->end) continue;
    Write write{*it->op, phases_[it->phase], it->begin, it->end};
    if (it->graph_ops > 0) {
      write.phase += " (graph op " + std::to_string(it->graph_op) + " of " +
                     std::to_string(it->graph_ops) + ")";
    }
    return write;
  }
  return std::nullopt;
}

CUDAGraph::CUDAGraph(GraphDevice device) : state_(std::make_unique<State>()) {
  state_->device = resolve(device);
}

CUDAGraph::~CUDAGraph() {
  if (t_capturing == state_.get()) {
    c10::impl::tls_set_dispatch_key_included(kCaptureKey, state_->was_included);
    t_capturing = nullptr;
  }
  forget_pool_blocks(*state_);
}

GraphDevice CUDAGraph::device() const { return state_->device; }

void CUDAGraph::capture_begin(MempoolId_t pool) {
  if (state_->device == GraphDevice::kCuda) {
    if (!state_->real) state_->real = make_real_graph();
    state_->pool = pool;
    state_->real->capture_begin(pool);
    state_->capture = State::Capture::kActive;
    return;
  }
  if (t_capturing) {
    throw_backend_error(BackendErrorKind::kCaptureUnsupported, "capture_begin",
                        "this thread is capturing already");
  }
  if (state_->capture == State::Capture::kCaptured) {
    throw_backend_error(BackendErrorKind::kIllegalState, "capture_begin",
                        "this graph holds a capture; reset() it first");
  }
  forget_pool_blocks(*state_);
  state_->ops.clear();
  state_->externals.clear();
  state_->shadows.clear();
  state_->reused.clear();
  state_->invalidated_by.clear();
  state_->shared_pool = !(pool.first == 0 && pool.second == 0);
  state_->pool = state_->shared_pool ? pool : graph_pool_handle(GraphDevice::kEmulator);
  state_->capture = State::Capture::kActive;
  state_->was_included = c10::impl::tls_is_dispatch_key_included(kCaptureKey);
  c10::impl::tls_set_dispatch_key_included(kCaptureKey, true);
  t_capturing = state_.get();
}

void CUDAGraph::capture_end() {
  if (state_->device == GraphDevice::kCuda) {
    if (state_->capture != State::Capture::kActive) {
      throw_backend_error(BackendErrorKind::kIllegalState, "capture_end", "this graph is not capturing");
    }
    state_->capture = State::Capture::kNone;
    state_->real->capture_end();
    state_->capture = State::Capture::kCaptured;
    return;
  }
  if (t_capturing != state_.get()) {
    throw_backend_error(BackendErrorKind::kIllegalState, "capture_end",
                        "this graph is not capturing on this thread");
  }
  c10::impl::tls_set_dispatch_key_included(kCaptureKey, state_->was_included);
  t_capturing = nullptr;
  state_->shadows.clear();
  state_->reused.clear();
  if (state_->capture == State::Capture::kInvalidated) {
    state_->ops.clear();
    state_->capture = State::Capture::kNone;
    throw_backend_error(BackendErrorKind::kCaptureInvalidated, "capture_end",
                        "the capture was invalidated by " + state_->invalidated_by +
                            "; no graph was made");
  }
  // The storages the graph reads or writes that it does not own: their
  // owners must keep them, unresized, for as long as the graph replays.
  std::unordered_set<const c10::StorageImpl*> owned;
  std::unordered_map<c10::TensorImpl*, std::size_t> references;  // the records' own
  for (const auto& r : state_->ops) {
    for (const auto& o : r.outputs) {
      for_each_tensor(o, [&](const at::Tensor& t) {
        owned.insert(t.storage().unsafeGetStorageImpl());
        ++references[t.unsafeGetTensorImpl()];
      });
    }
    for (const auto& a : r.arguments) {
      for_each_tensor(a, [&](const at::Tensor& t) { ++references[t.unsafeGetTensorImpl()]; });
    }
  }
  std::unordered_map<const c10::StorageImpl*, std::size_t> external_index;
  for (const auto& r : state_->ops) {
    for (const auto& a : r.arguments) {
      for_each_tensor(a, [&](const at::Tensor& t) {
        if (!t.defined() || !t.has_storage()) return;
        // A wrapped number (a Python scalar operand, `x + 1`) is a host value
        // passed by value at capture: baked, like any scalar, so its freeing
        // does not dangle (the record keeps it).
        if (t.unsafeGetTensorImpl()->is_wrapped_number()) return;
        const c10::StorageImpl* impl = t.storage().unsafeGetStorageImpl();
        if (owned.count(impl) || external_index.count(impl)) return;
        external_index[impl] = state_->externals.size();
        state_->externals.push_back(
            {t.storage(), t.storage().nbytes(), t.storage().data(), op_info(r.op).name, {}});
      });
    }
  }
  for (const auto& [impl, ours] : references) {
    if (!impl->has_storage()) continue;
    const auto it = external_index.find(impl->storage().unsafeGetStorageImpl());
    if (it != external_index.end()) state_->externals[it->second].held.emplace_back(impl, ours);
  }
  if (state_->shared_pool) {
    // Every output joins the pool, with the references the records hold to
    // it; a later capture into the pool reuses it once only those remain.
    Pools& p = pools();
    std::lock_guard<std::mutex> lock(p.mutex);
    std::vector<PoolBlock>& blocks = p.blocks[state_->pool];
    std::unordered_set<const c10::StorageImpl*> known;
    for (const PoolBlock& b : blocks) known.insert(b.tensor.storage().unsafeGetStorageImpl());
    for (const auto& r : state_->ops) {
      for (const auto& o : r.outputs) {
        for_each_tensor(o, [&](const at::Tensor& t) {
          if (!known.insert(t.storage().unsafeGetStorageImpl()).second) return;  // reused block
          blocks.push_back(PoolBlock{t, references[t.unsafeGetTensorImpl()], state_.get()});
        });
      }
    }
  }
  state_->capture = State::Capture::kCaptured;
}

namespace {

// A storage from outside the capture is freed by its owner when nothing but
// the graph refers to it any more: every tensor on it is held by the graph
// alone (a GPU graph holds raw addresses, so there it would dangle).
void check_externals(const CUDAGraph::State& state) {
  for (const auto& e : state.externals) {
    bool only_ours = e.storage.use_count() == 1 + e.held.size();  // the entry's own + the held
    for (const auto& [impl, ours] : e.held) {
      only_ours = only_ours && c10::raw::intrusive_ptr::use_count(impl) == ours;
    }
    const bool freed = !e.held.empty() && only_ours;
    const bool resized = e.storage.nbytes() != e.nbytes || e.storage.data() != e.data;
    if (freed || resized) {
      throw_backend_error(BackendErrorKind::kDanglingBuffer, "replay",
                          std::string("a storage read by ") + e.op + " was " +
                              (freed ? "freed by its owner" : "resized") +
                              " after the capture; on a GPU the graph would use dangling memory");
    }
  }
}

}  // namespace

void CUDAGraph::replay() {
  if (state_->capture != State::Capture::kCaptured) {
    throw_backend_error(BackendErrorKind::kIllegalState, "replay",
                        "nothing was captured into this graph");
  }
  if (state_->device == GraphDevice::kCuda) {
    state_->real->replay();
    return;
  }
  if (t_capturing) {
    throw_backend_error(BackendErrorKind::kCaptureUnsupported, "replay",
                        "a replay while this thread is capturing");
  }
  // Rule 5: a storage freed (only the graph still refers to it) or resized
  // since the capture would be dangling memory on a GPU.
  check_externals(*state_);
  BelowEmulator below;
  WriteTrace* trace = t_trace;
  for (std::size_t k = 0; k < state_->ops.size(); ++k) {
    const RecordedOp& r = state_->ops[k];
    torch::jit::Stack stack(r.arguments.begin(), r.arguments.end());
    r.op.callBoxed(&stack);
    if (trace) {
      const int ops = static_cast<int>(state_->ops.size());
      const std::string& name = op_info(r.op).name;
      auto note = [&](const at::Tensor& t) { note_write(*trace, name, t, static_cast<int>(k) + 1, ops); };
      if (r.kind == Kind::kFunctional) {
        for (const auto& o : r.outputs) for_each_tensor(o, note);
      } else {
        for_each_written(r.op.schema(), r.arguments, note);
      }
    }
    if (r.kind != Kind::kFunctional) continue;
    for (std::size_t i = 0; i < r.outputs.size() && i < stack.size(); ++i) {
      if (r.outputs[i].isTensor()) {
        r.outputs[i].toTensor().copy_(stack[i].toTensor());
      } else if (r.outputs[i].isTensorList()) {
        const auto outs = r.outputs[i].toTensorList();
        const auto results = stack[i].toTensorList();
        for (std::size_t k = 0; k < outs.size(); ++k) outs.get(k).copy_(results.get(k));
      }
    }
  }
}

void CUDAGraph::reset() {
  if (t_capturing == state_.get()) {
    throw_backend_error(BackendErrorKind::kIllegalState, "reset", "reset while capturing");
  }
  if (state_->real) state_->real->reset();
  forget_pool_blocks(*state_);
  state_->ops.clear();
  state_->externals.clear();
  state_->capture = State::Capture::kNone;
}

MempoolId_t CUDAGraph::pool() const { return state_->pool; }

std::vector<std::string> CUDAGraph::recorded_ops() const {
  std::vector<std::string> names;
  for (const auto& r : state_->ops) names.push_back(op_name(r.op));
  return names;
}

}  // namespace capcheck::torch_graph
