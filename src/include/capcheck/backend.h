// The device backend: one device, one stream, int32 buffers and a handful of
// elementwise ops, with CUDA-graph stream capture (docs/capture-rules.md).
// Backends see buffers and ops, never requests or scenarios.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace capcheck {

/// A handle to a device buffer of int32 elements. `generation` distinguishes a
/// buffer from a later one that reuses its slot, so stale handles are detected.
struct Buffer {
  std::uint32_t slot = 0;
  std::uint32_t generation = 0;
  std::int64_t size = 0;

  bool valid() const { return generation != 0; }
  friend bool operator==(const Buffer& a, const Buffer& b) {
    return a.slot == b.slot && a.generation == b.generation;
  }
};

/// `count` elements of `buffer` starting at `offset`.
struct Slice {
  Buffer buffer;
  std::int64_t offset = 0;
  std::int64_t count = 0;
};

/// The whole buffer.
inline Slice whole(Buffer buffer) { return Slice{buffer, 0, buffer.size}; }
/// Elements [begin, end) of `buffer`.
inline Slice range(Buffer buffer, std::int64_t begin, std::int64_t end) {
  return Slice{buffer, begin, end - begin};
}

enum class OpKind : std::uint8_t {
  kAdd,        // dst[i] += src[i]
  kSub,        // dst[i] -= src[i]
  kCopy,       // dst[i] = src[i]
  kFill,       // dst[i] = value (a host value: baked into a captured graph)
  kModelStep,  // dst[t] = model_mix(src[t], positions[t], kv_lens[seq_ids[t]])
};

/// Returns "add", "sub", "copy", "fill" or "model_step".
const char* op_kind_name(OpKind kind);

/// One device op. Slices and `value` are host values: a captured graph keeps
/// them as they were at capture; the data behind the buffers is read at replay.
struct Op {
  OpKind kind = OpKind::kFill;
  Slice dst;
  Slice src;        // add/sub/copy source; model_step: input ids
  Slice positions;  // model_step: position ids
  Slice seq_ids;    // model_step: the sequence of each token
  Slice kv_lens;    // model_step: per-sequence kv lengths, indexed by seq_ids
  std::int32_t value = 0;
};

/// One op of a captured graph, with the phase (Backend::annotate) it was
/// captured in.
struct RecordedOp {
  Op op;
  const char* phase = "";
};

/// True when `a` and `b` share at least one element of one buffer.
inline bool overlaps(const Slice& a, const Slice& b) {
  return a.buffer == b.buffer && a.count > 0 && b.count > 0 && a.offset < b.offset + b.count &&
         b.offset < a.offset + a.count;
}

/// A captured, instantiated graph.
struct Graph {
  std::uint32_t id = 0;
};

/// The narrow device interface every backend implements. Wrong arguments (a
/// slice out of bounds, a dead buffer) and illegal capture use throw
/// BackendError with the CUDA error kind a real GPU would report.
class Backend {
 public:
  virtual ~Backend() = default;

  /// "sim", "torch" or "cuda".
  virtual std::string_view name() const = 0;

  /// A zero-filled buffer of `count` int32 elements; `label` names it in reports.
  virtual Buffer allocate(std::string_view label, std::int64_t count) = 0;
  /// Frees the buffer. A graph that still refers to it reports it at replay.
  virtual void free(Buffer buffer) = 0;
  /// The label given at allocation.
  virtual std::string label(Buffer buffer) const = 0;

  /// Host to device, synchronous. Illegal while capturing.
  virtual void upload(Slice dst, const std::int32_t* src) = 0;
  /// Device to host, synchronous. Illegal while capturing.
  virtual void download(Slice src, std::int32_t* dst) = 0;

  /// Runs `op` on the stream, or appends it to the graph while capturing.
  virtual void launch(const Op& op) = 0;

  /// Starts stream capture: later launches are recorded, not run.
  virtual void begin_capture() = 0;
  /// Ends capture and instantiates the graph.
  virtual Graph end_capture() = 0;
  /// Launches every recorded op again, on the buffers it was recorded with.
  virtual void replay(Graph graph) = 0;
  /// Releases the graph.
  virtual void destroy_graph(Graph graph) = 0;
  /// Waits for the stream. Illegal while capturing.
  virtual void synchronize() = 0;
  /// True between begin_capture() and end_capture().
  virtual bool capturing() const = 0;
  /// The ops a live graph recorded, oldest first, with their phases; null for
  /// a graph that is not live (Note [one capture model]).
  virtual const std::vector<RecordedOp>* recorded_ops(Graph graph) const = 0;

  /// Names the phase of the ops launched next ("warmup 1 preprocess", ...), for
  /// traces; a graph keeps the phase of each op it recorded. `phase` must
  /// outlive the backend (a string literal).
  virtual void annotate(const char* phase) = 0;

  // Convenience wrappers around launch().
  void add(Slice dst, Slice src) { launch(Op{OpKind::kAdd, dst, src, {}, {}, {}, 0}); }
  void sub(Slice dst, Slice src) { launch(Op{OpKind::kSub, dst, src, {}, {}, {}, 0}); }
  void copy(Slice dst, Slice src) { launch(Op{OpKind::kCopy, dst, src, {}, {}, {}, 0}); }
  void fill(Slice dst, std::int32_t value) {
    launch(Op{OpKind::kFill, dst, {}, {}, {}, {}, value});
  }
  void model_step(Slice out, Slice input_ids, Slice position_ids, Slice seq_ids, Slice kv_lens) {
    launch(Op{OpKind::kModelStep, out, input_ids, position_ids, seq_ids, kv_lens, 0});
  }
};

/// Options common to every backend.
struct BackendOptions {
  /// Run on the legacy default stream, where capture is illegal (CUDA error 900).
  bool legacy_stream = false;
};

/// Downloads `slice` into a new host vector (synchronous; illegal while capturing).
std::vector<std::int32_t> read(Backend& backend, Slice slice);

/// Human description of an op with its buffer labels, e.g.
/// "sub kv_lens_cuda[1:4] -= previous_kv_lens_offsets[0:3]".
std::string describe(const Backend& backend, const Op& op);

}  // namespace capcheck
