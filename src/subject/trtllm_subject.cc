// Note [TensorRT-LLM capture path]: CUDAGraphRunner.capture() runs
//   for _ in range(warmups): forward_fn(capture_inputs); postprocess_fn(capture_inputs)
//   with torch.cuda.graph(g): output = forward_fn(capture_inputs)
//   postprocess_fn(capture_inputs)
// where forward_fn begins with _preprocess_inputs, and capture_inputs holds the
// static input_ids / position_ids buffers plus the attention metadata
// (kv_lens_cuda) and the overlap scheduler's previous-iteration offsets.
// replay() copies the iteration's input_ids and position_ids into the static
// buffers and launches the graph; kv_lens_cuda is not copied: the graph reads
// whatever the metadata holds. Between a lazy capture and its immediate replay
// nothing rewrites kv_lens_cuda, which is how a postprocess after capture leaks
// into the first replay (the seed-pr protocol, docs/properties.md).
#include "capcheck/trtllm_subject.h"

#include <algorithm>
#include <map>
#include <vector>

#include "capcheck/errors.h"
#include "capcheck/graph_pool.h"

namespace capcheck {

namespace {

class TrtllmSubject final : public Subject {
 public:
  TrtllmSubject(Backend& backend, const SubjectLimits& limits)
      : backend_(backend), limits_(limits), output_pool_(backend, "graph_pool", limits.tokens_max) {
    CAPCHECK_ASSERT(limits.seqs_max >= 1);
    CAPCHECK_ASSERT(limits.tokens_max >= 1);
    const std::int64_t tokens = limits.tokens_max;
    const std::int64_t seqs = limits.seqs_max;
    input_ids_ = backend.allocate("input_ids", tokens);
    position_ids_ = backend.allocate("position_ids", tokens);
    static_input_ids_ = backend.allocate("static_input_ids", tokens);
    static_position_ids_ = backend.allocate("static_position_ids", tokens);
    seq_lens_ = backend.allocate("seq_lens_cuda", seqs);
    kv_lens_ = backend.allocate("kv_lens_cuda", seqs);
    seq_ids_ = backend.allocate("seq_ids", tokens);
    pos_offsets_ = backend.allocate("previous_pos_id_offsets", tokens);
    kv_offsets_ = backend.allocate("previous_kv_lens_offsets", seqs);
    rejected_ = backend.allocate("num_rejected_draft_tokens", seqs);
    ones_ = backend.allocate("ones", std::max(seqs, tokens));
    kv_lens_snapshot_ = backend.allocate("kv_lens_snapshot", seqs);
    logits_ = backend.allocate("logits", tokens);
    for (Buffer b : {input_ids_, position_ids_, static_input_ids_, static_position_ids_, seq_lens_,
                     kv_lens_, seq_ids_, pos_offsets_, kv_offsets_, rejected_}) {
      persistent_.push_back(NamedSlice{backend.label(b), whole(b)});
    }
    all_buffers_ = {input_ids_,  position_ids_, static_input_ids_, static_position_ids_,
                    seq_lens_,   kv_lens_,      seq_ids_,          pos_offsets_,
                    kv_offsets_, rejected_,     ones_,             kv_lens_snapshot_,
                    logits_};
    backend.fill(whole(ones_), 1);
  }

  ~TrtllmSubject() override {
    // Destructors never throw: a backend failure here is reported and ignored.
    try {
      release_graphs();
      for (Buffer b : all_buffers_) backend_.free(b);
    } catch (const std::exception&) {
    }
  }

  void reset() override {
    release_graphs();
    for (Buffer b : all_buffers_) backend_.fill(whole(b), b == ones_ ? 1 : 0);
    // Every graph output back to the pool, which keeps its segments (zeroed).
    output_pool_.release_all();
    for (Buffer segment : output_pool_.segments()) backend_.fill(whole(segment), 0);
    static_logits_.clear();
    kv_capacity_ = 0;
    prepared_ = false;
    forward_reads_static_ = false;
  }

  void prepare(const Scenario& s) override {
    validate(s);  // the layer boundary: every index below relies on it
    limits_.require_fits(s);
    scenario_ = s;
    num_tokens_ = s.num_tokens();
    num_ctx_tokens_ = s.num_ctx_tokens();
    seq_ids_host_ = token_sequences(s);
    backend_.annotate("prepare");
    if (s.mutant == Mutant::kReallocAfterCapture) grow_kv_lens(s.num_seqs());
    backend_.upload(range(input_ids_, 0, num_tokens_), s.input_ids.data());
    backend_.upload(range(position_ids_, 0, num_tokens_), s.position_ids.data());
    backend_.upload(range(seq_lens_, 0, s.num_seqs()), s.seq_lens.data());
    // attn_metadata.prepare() rewrites kv_lens_cuda from host every iteration;
    // the mutant skips it when the key's graph already exists.
    const bool skip_kv_rewrite = s.mutant == Mutant::kReplayWithoutPrepare &&
                                 graphs_.count(key_index(s.key)) > 0;
    if (!skip_kv_rewrite) backend_.upload(range(kv_lens_, 0, s.num_seqs()), s.kv_lens.data());
    backend_.upload(range(seq_ids_, 0, num_tokens_), seq_ids_host_.data());
    // The overlap scheduler's offsets are new every iteration; the mutant
    // keeps those of the capture once the key's graph exists (warmup
    // metadata not refreshed: TensorRT-LLM PRs #5947, #6136).
    const bool stale_offsets =
        s.mutant == Mutant::kStaleOffsets && graphs_.count(key_index(s.key)) > 0;
    if (!stale_offsets) {
      backend_.upload(range(pos_offsets_, 0, num_tokens_ - num_ctx_tokens_),
                      s.previous_pos_id_offsets.data());
      backend_.upload(range(kv_offsets_, 0, s.kv_offsets_count()), s.previous_kv_lens_offsets.data());
    }
    rejected_host_ = rejected_draft_tokens(s);
    backend_.upload(range(rejected_, 0, s.num_generations), rejected_host_.data());
    prepared_ = true;
  }

  const std::vector<NamedSlice>& persistent_buffers() const override { return persistent_; }

  std::vector<NamedSlice> static_inputs() const override {
    return {NamedSlice{"static_input_ids", whole(static_input_ids_)},
            NamedSlice{"static_position_ids", whole(static_position_ids_)}};
  }

  void preprocess() override {
    require_prepared("preprocess");
    backend_.annotate("preprocess");
    update_inputs(position_ids_, /*sign=*/+1);
  }
  void postprocess() override {
    require_prepared("postprocess");
    backend_.annotate("postprocess");
    update_inputs(position_ids_, /*sign=*/-1);
  }

  Slice forward_eager() override {
    require_prepared("forward_eager");
    if (forward_reads_static_) {
      // The mutant: the capture's switch to the static inputs is still on.
      backend_.annotate("eager forward (on the static inputs)");
      return forward_static(whole(logits_));
    }
    backend_.annotate("eager preprocess");
    update_inputs(position_ids_, +1);
    backend_.annotate("eager model");
    const Slice out = model(input_ids_, position_ids_, whole(logits_));
    backend_.annotate("eager draft loop");
    draft_loop(+1);
    return out;
  }

  void capture() override {
    require_prepared("capture");
    const Protocol protocol = scenario_.protocol;
    const bool postprocess_warmups = protocol != Protocol::kPreFix;
    const bool postprocess_capture =
        protocol == Protocol::kSeedPr || protocol == Protocol::kSnapshotRestore;
    if (protocol == Protocol::kSnapshotRestore) {
      backend_.annotate("snapshot kv_lens");
      backend_.copy(whole(kv_lens_snapshot_), whole(kv_lens_));
    }
    if (scenario_.mutant == Mutant::kCacheKeyWithoutDraftLen &&
        graphs_.count(graph_cache_index(scenario_)) > 0) {
      return;  // the mutant's cache says this key is captured already
    }
    for (std::int32_t w = 0; w < scenario_.warmups_count; ++w) {
      backend_.annotate("warmup forward");
      forward_static(key_logits(scenario_));
      if (protocol == Protocol::kReference) {
        // Restore everything the forward mutated in place, in reverse order.
        backend_.annotate("warmup restore (draft loop, then postprocess)");
        draft_loop(-1);
        update_inputs(static_position_ids_, -1);
      } else if (postprocess_warmups) {
        backend_.annotate("warmup postprocess");
        update_inputs(static_position_ids_, -1);
      }
    }
    release_graph(scenario_);
    // A capture-only switch: the forward reads the static inputs while the
    // graph is recorded; the mutant never switches it back.
    forward_reads_static_ = true;
    // Each key's graph writes its own block of the shared pool, held until
    // reset() (as CUDAGraphRunner holds each key's output tensor).
    const Slice out = key_logits(scenario_);
    backend_.annotate("capture forward (recorded)");
    backend_.begin_capture();
    try {
      forward_static(out);
    } catch (...) {
      forward_reads_static_ = false;
      abandon_capture();
      throw;
    }
    graphs_[graph_cache_index(scenario_)] = backend_.end_capture();
    if (scenario_.mutant == Mutant::kPoolOutputAlias) {
      // The mutant keeps only a weak reference to the graph's output: the
      // block goes back to the pool, and the next key's capture takes it.
      KeyOutput& output = static_logits_.at(graph_cache_index(scenario_));
      output_pool_.release(output.block);
      output.held = false;
    }
    if (scenario_.mutant != Mutant::kCaptureOverrideLeaks) forward_reads_static_ = false;
    if (postprocess_capture) {
      backend_.annotate("postprocess after capture");
      update_inputs(static_position_ids_, -1);
    }
    if (protocol == Protocol::kSnapshotRestore) {
      backend_.annotate("restore kv_lens");
      backend_.copy(whole(kv_lens_), whole(kv_lens_snapshot_));
    }
  }

  Slice replay() override {
    require_prepared("replay");
    const auto it = graphs_.find(graph_cache_index(scenario_));
    if (it == graphs_.end()) throw_replay_before_capture(scenario_.key);
    const std::int64_t copied = replay_copied_tokens(scenario_);
    backend_.annotate("replay input copy");
    backend_.copy(range(static_input_ids_, 0, copied), range(input_ids_, 0, copied));
    backend_.copy(range(static_position_ids_, 0, copied), range(position_ids_, 0, copied));
    backend_.annotate("graph replay");
    backend_.replay(it->second);
    const Slice block = static_logits_.at(graph_cache_index(scenario_)).block;
    return Slice{block.buffer, block.offset, num_tokens_};
  }

 private:
  void require_prepared(const char* call) const {
    if (!prepared_) throw UsageError(std::string(call) + " called before prepare()");
  }

  // _preprocess_inputs (sign +1) and _postprocess_inputs (sign -1) on the given
  // position-id buffer; the slice bounds are host values, baked at capture.
  void update_inputs(Buffer position_ids, int sign) {
    const Scenario& s = scenario_;
    auto apply = [&](Slice dst, Slice src) {
      if (dst.count == 0) return;
      if (sign > 0) backend_.add(dst, src); else backend_.sub(dst, src);
    };
    const std::int64_t gen_tokens = num_tokens_ - num_ctx_tokens_;
    if (s.mutant == Mutant::kOffsetMisalignment && s.num_dummy_requests > 0) {
      // The bug (the class of PR #6136): the previous tensor's tokens taken as
      // if the padding dummies came first, so real token t reads the offset
      // of token t + dummies' tokens.
      const std::int64_t shift = std::int64_t{s.num_dummy_requests} * (1 + s.key.draft_len);
      apply(range(position_ids, num_ctx_tokens_, num_tokens_ - shift), range(pos_offsets_, shift, gen_tokens));
      apply(range(position_ids, num_tokens_ - shift, num_tokens_), range(pos_offsets_, 0, shift));
    } else {
      apply(range(position_ids, num_ctx_tokens_, num_tokens_), range(pos_offsets_, 0, gen_tokens));
    }
    const bool chunked_branch =
        s.num_chunked_ctx_requests > 0 &&
        !(sign < 0 && s.mutant == Mutant::kChunkedBranchAsymmetry);
    if (chunked_branch) {
      apply(range(kv_lens_, s.num_contexts - s.num_chunked_ctx_requests, s.num_contexts),
            range(kv_offsets_, 0, s.num_chunked_ctx_requests));
    } else if (s.mutant == Mutant::kPaddedRowsNotInert && s.num_dummy_requests > 0) {
      // The bug: the previous tensor's rows are taken as if the padding
      // dummies came first, so real row g reads the offset of row g + dummies.
      const std::int64_t rows = s.num_generations;
      const std::int64_t shift = s.num_dummy_requests;
      const std::int64_t first = s.num_contexts;
      apply(range(kv_lens_, first, first + rows - shift), range(kv_offsets_, shift, rows));
      apply(range(kv_lens_, first + rows - shift, first + rows), range(kv_offsets_, 0, shift));
    } else {
      // The mutant sizes the update by the batch's real requests: a host value
      // of the batch being captured, baked into the graph's slice.
      const std::int64_t count = s.mutant == Mutant::kHostValueBaked
                                     ? s.num_generations - s.num_dummy_requests
                                     : std::min(s.num_generations, s.kv_offsets_count());
      apply(range(kv_lens_, s.num_contexts, s.num_contexts + count), range(kv_offsets_, 0, count));
    }
  }

  // The target model into the first tokens of `out`.
  Slice model(Buffer input_ids, Buffer position_ids, Slice out) {
    const Slice result{out.buffer, out.offset, num_tokens_};
    backend_.model_step(result, range(input_ids, 0, num_tokens_),
                        range(position_ids, 0, num_tokens_), range(seq_ids_, 0, num_tokens_),
                        whole(kv_lens_));
    return result;
  }

  Slice forward_static(Slice out) {
    update_inputs(static_position_ids_, +1);
    const Slice result = model(static_input_ids_, static_position_ids_, out);
    draft_loop(+1);
    return result;
  }

  // The key's output block; one is taken from the pool (outside capture) when
  // the key holds none.
  Slice key_logits(const Scenario& s) {
    KeyOutput& output = static_logits_[graph_cache_index(s)];
    if (!output.held) {
      output_pool_.reserve(limits_.tokens_max);
      output.block = output_pool_.allocate(limits_.tokens_max);
      output.held = true;
    }
    return output.block;
  }

  // The mutant: attention metadata sized for the batches seen since reset(),
  // reallocated when one outgrows it; the graphs captured before still refer
  // to the old buffer (dangling at their next replay: capture rule 5).
  void grow_kv_lens(std::int64_t seqs) {
    if (kv_capacity_ == 0) kv_capacity_ = seqs;
    if (seqs <= kv_capacity_) return;
    kv_capacity_ = seqs;
    const Buffer old = kv_lens_;
    kv_lens_ = backend_.allocate("kv_lens_cuda", limits_.seqs_max);
    backend_.copy(whole(kv_lens_), whole(old));
    backend_.free(old);
    for (Buffer& b : all_buffers_) b = b == old ? kv_lens_ : b;
    for (NamedSlice& named : persistent_) {
      if (named.slice.buffer == old) named.slice = whole(kv_lens_);
    }
  }

  // One-model speculative decoding's draft loop after the target model:
  // step 0 moves generation rows by -(draft_len - accepted) and context rows by
  // +1, each later draft step moves every row by +1 (PR #11696; docs/properties.md).
  // sign -1 applies the exact inverse, in reverse order.
  void draft_loop(int sign) {
    const Scenario& s = scenario_;
    if (!s.draft_loop) return;
    auto apply = [&](Slice dst, Slice src, int direction) {
      if (dst.count == 0) return;
      if (direction * sign > 0) backend_.add(dst, src); else backend_.sub(dst, src);
    };
    const std::int64_t nc = s.num_contexts;
    const std::int64_t bs = s.num_seqs();
    auto step0 = [&] {
      apply(range(kv_lens_, nc, bs), range(rejected_, 0, bs - nc), -1);
      apply(range(kv_lens_, 0, nc), range(ones_, 0, nc), +1);
    };
    auto later_step = [&] { apply(range(kv_lens_, 0, bs), range(ones_, 0, bs), +1); };
    if (sign > 0) {
      step0();
      for (std::int32_t step = 1; step < s.key.draft_len; ++step) later_step();
    } else {
      for (std::int32_t step = 1; step < s.key.draft_len; ++step) later_step();
      step0();
    }
  }

  void abandon_capture() {
    try {
      backend_.end_capture();
    } catch (const BackendError&) {
      // Expected: the capture was invalidated by the failure being propagated.
    }
  }

  void release_graph(const Scenario& s) {
    const auto it = graphs_.find(graph_cache_index(s));
    if (it == graphs_.end()) return;
    backend_.destroy_graph(it->second);
    graphs_.erase(it);
  }

  void release_graphs() {
    for (const auto& entry : graphs_) backend_.destroy_graph(entry.second);
    graphs_.clear();
  }

  Backend& backend_;
  SubjectLimits limits_;
  Buffer input_ids_, position_ids_, static_input_ids_, static_position_ids_, seq_lens_, kv_lens_,
      seq_ids_, pos_offsets_, kv_offsets_, rejected_, ones_, kv_lens_snapshot_, logits_;
  GraphPool output_pool_;  // shared by every key's graph
  struct KeyOutput {
    Slice block;
    bool held = false;  // false: given back to the pool (pool-output-alias)
  };
  std::map<std::int64_t, KeyOutput> static_logits_;  // per graph key
  std::int64_t kv_capacity_ = 0;  // realloc-after-capture: sequences kv_lens is sized for
  bool forward_reads_static_ = false;  // set while capturing (capture-override-leaks: kept)
  std::vector<Buffer> all_buffers_;
  std::vector<NamedSlice> persistent_;
  std::map<std::int64_t, Graph> graphs_;
  Scenario scenario_;
  bool prepared_ = false;
  std::int64_t num_tokens_ = 0;
  std::int64_t num_ctx_tokens_ = 0;
  std::vector<std::int32_t> seq_ids_host_;
  std::vector<std::int32_t> rejected_host_;
};

}  // namespace

std::unique_ptr<Subject> make_trtllm_subject(Backend& backend, const SubjectLimits& limits) {
  return std::make_unique<TrtllmSubject>(backend, limits);
}

}  // namespace capcheck
