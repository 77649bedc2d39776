// Note [the LibTorch TensorRT-LLM runner]
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// The built-in subject (Note [TensorRT-LLM capture path] in
// subject/trtllm_subject.cc) written a second time with real tensors, as
// TensorRT-LLM's PyTorch model engine writes it:
//   - `kv_lens_cuda` is int32 `[S]`; `position_ids` is `[1, N]`, or `[3, 1, N]`
//     for multimodal rotary positions (mrope: every row gets the offsets);
//   - `_preprocess_inputs` / `_postprocess_inputs` are in-place slicing ops:
//     `position_ids[..., ctx:] += previous_pos_id_offsets`, and the kv branch
//     `kv_lens_cuda[a:b] += previous_kv_lens_offsets` (chunked contexts, or
//     generation rows);
//   - the draft loop of one-model speculative decoding moves kv_lens_cuda in
//     place inside the forward;
//   - the model is small and in float32: an embedding lookup of the token id,
//     the id's high part, the positions and each token's kv_len as features,
//     and one linear layer. Its weights are small integers, so every sum is
//     exact whatever order a kernel adds in: eager, the emulator's replay and a
//     CUDA graph's replay agree bitwise, and a different input always gives a
//     different output (the identity block of the weights), so verdicts equal
//     the op-level subject's (verdicts_agree);
//   - capture follows the scenario's protocol (the four of scenario.h), with
//     warmups, the facade's capture stream and one shared memory pool for all
//     keys, as CUDAGraphRunner passes its pool from key to key; each key keeps
//     its own graph and its output tensor.
// The mutants of scenario.h are the same code changes as in the op-level
// subject, but for realloc-after-capture (kv_lens_cuda is never reallocated
// here). The pool-output-alias mutant, like TrtllmTorchOptions::weak_outputs,
// keeps only a non-owning alias of each graph's output (the weak-reference
// pattern of engines that save pool memory), which the shared pool then hands
// to the next key's capture.
#include <map>
#include <vector>

#include "capcheck/errors.h"
#include "capcheck/torch_subject.h"

namespace capcheck {

namespace {

namespace tg = torch_graph;

constexpr std::int64_t kEmbeddingRows = 1024;
constexpr std::int64_t kEmbeddingWidth = 4;

class TrtllmTorch final : public TorchSubject {
 public:
  TrtllmTorch(const TorchSubjectOptions& options, TrtllmTorchOptions trtllm)
      : options_(options), trtllm_(trtllm) {
    CAPCHECK_ASSERT(options.limits.seqs_max >= 1 && options.limits.tokens_max >= 1);
    const auto i32 = torch::TensorOptions().dtype(torch::kInt32).device(options.device);
    const std::int64_t T = options.limits.tokens_max, S = options.limits.seqs_max;
    const std::int64_t position_rows = trtllm.mrope ? 3 : 1;
    const std::vector<std::int64_t> positions =
        trtllm.mrope ? std::vector<std::int64_t>{3, 1, T} : std::vector<std::int64_t>{1, T};
    // Every int32 tensor is a view of one arena, so reset() is one fill.
    arena_ = torch::zeros({T * (4 + 2 * position_rows) + S * 5}, i32);
    std::int64_t at = 0;
    auto take = [&](std::vector<std::int64_t> shape) {
      std::int64_t n = 1;
      for (auto d : shape) n *= d;
      torch::Tensor view = arena_.narrow(0, at, n).view(shape);
      at += n;
      return view;
    };
    input_ids_ = take({T});
    position_ids_ = take(positions);
    static_input_ids_ = take({T});
    static_position_ids_ = take(positions);
    seq_lens_ = take({S});
    kv_lens_ = take({S});
    seq_ids_ = take({T});
    pos_offsets_ = take({T});
    kv_offsets_ = take({S});
    rejected_ = take({S});
    kv_snapshot_ = take({S});
    CAPCHECK_ASSERT(at == arena_.numel());
    persistent_ = {{"input_ids", input_ids_},
                   {"position_ids", position_ids_},
                   {"static_input_ids", static_input_ids_},
                   {"static_position_ids", static_position_ids_},
                   {"seq_lens_cuda", seq_lens_},
                   {"kv_lens_cuda", kv_lens_},
                   {"seq_ids", seq_ids_},
                   {"previous_pos_id_offsets", pos_offsets_},
                   {"previous_kv_lens_offsets", kv_offsets_},
                   {"num_rejected_draft_tokens", rejected_}};
    // Integer weights (Note [the LibTorch TensorRT-LLM runner]): embedding row
    // r starts with r; the projection is the identity plus one column that
    // sums every feature.
    const auto f32 = torch::TensorOptions().dtype(torch::kFloat32);
    torch::Tensor rows = torch::arange(kEmbeddingRows, f32);
    embedding_ = torch::stack({rows, torch::remainder(rows * 37, 101), torch::remainder(rows * 11, 13) - 6,
                               torch::remainder(rows, 7)},
                              1)
                     .to(options.device);
    const std::int64_t features = kEmbeddingWidth + 1 + (trtllm.mrope ? 3 : 1) + 1;
    projection_ = torch::cat({torch::eye(features, f32), torch::ones({features, 1}, f32)}, 1)
                      .to(options.device);
    stream_ = tg::getStreamFromPool(options.graphs);
    // One memory pool for every key and every reset(), as CUDAGraphRunner
    // keeps its pool for the runner's life: the blocks of released graphs
    // return to it and the next captures take them again.
    pool_ = tg::graph_pool_handle(options.graphs);
    if (options.device.is_cuda()) {
      tg::StreamGuard on_capture_stream(stream_);
      // cuBLAS creates its handle and workspace on first use, which a capture
      // refuses: the engine's start-up warms it up on the capture stream.
      (void)projection_.t().matmul(projection_);
      // A pool whose every graph is gone cannot be captured into again
      // (LibTorch's allocator asserts): one graph in it is kept for the
      // subject's life.
      pool_owner_ = std::make_unique<tg::CUDAGraph>(options.graphs);
      pool_owner_->capture_begin(pool_);
      (void)(kv_snapshot_ + 0);
      pool_owner_->capture_end();
    }
  }

  void reset() override {
    graphs_.clear();
    arena_.zero_();
    prepared_ = false;
    forward_reads_static_ = false;
  }

  void prepare(const Scenario& s) override {
    validate(s);  // every slice below relies on it
    options_.limits.require_fits(s);
    scenario_ = s;
    num_tokens_ = s.num_tokens();
    num_ctx_tokens_ = s.num_ctx_tokens();
    const std::vector<std::int32_t> seq_ids = token_sequences(s);
    const std::vector<std::int32_t> rejected = rejected_draft_tokens(s);
    // attn_metadata.prepare() rewrites kv_lens_cuda from host every iteration;
    // the mutant skips it when the key's graph already exists.
    const bool skip_kv_rewrite =
        s.mutant == Mutant::kReplayWithoutPrepare && graphs_.count(key_index(s.key)) > 0;
    // Every field in one host-to-device copy (one synchronization on a GPU),
    // then a device copy into each tensor.
    std::vector<std::pair<torch::Tensor, const std::vector<std::int32_t>*>> fields = {
        {input_ids_, &s.input_ids}, {seq_lens_, &s.seq_lens}, {seq_ids_, &seq_ids},
        {rejected_, &rejected}};
    // The overlap scheduler's offsets are new every iteration; the mutant
    // keeps those of the capture once the key's graph exists.
    if (!(s.mutant == Mutant::kStaleOffsets && graphs_.count(key_index(s.key)) > 0)) {
      fields.emplace_back(pos_offsets_, &s.previous_pos_id_offsets);
      fields.emplace_back(kv_offsets_, &s.previous_kv_lens_offsets);
    }
    for (std::int64_t row = 0; row < position_ids_.size(0); ++row) {
      fields.emplace_back(position_ids_[row].reshape({-1}), &s.position_ids);
    }
    if (!skip_kv_rewrite) fields.emplace_back(kv_lens_, &s.kv_lens);
    staging_.clear();
    for (const auto& field : fields) staging_.insert(staging_.end(), field.second->begin(), field.second->end());
    const torch::Tensor staged =
        torch::from_blob(staging_.data(), {static_cast<std::int64_t>(staging_.size())}, torch::kInt32)
            .to(options_.device);
    std::int64_t at = 0;
    for (const auto& [tensor, values] : fields) {
      const auto n = static_cast<std::int64_t>(values->size());
      if (n > 0) tensor.narrow(0, 0, n).copy_(staged.narrow(0, at, n));
      at += n;
    }
    prepared_ = true;
  }

  std::vector<NamedTensor> persistent_tensors() const override { return persistent_; }
  std::vector<NamedTensor> static_inputs() const override {
    return {{"static_input_ids", static_input_ids_}, {"static_position_ids", static_position_ids_}};
  }

  void preprocess() override {
    require_prepared("preprocess");
    update_inputs(position_ids_, +1);
  }
  void postprocess() override {
    require_prepared("postprocess");
    update_inputs(position_ids_, -1);
  }

  std::vector<NamedTensor> forward() override {
    require_prepared("forward");
    if (forward_reads_static_) {
      // The mutant: the capture's switch to the static inputs is still on.
      tg::annotate("eager forward (on the static inputs)");
      return {{"logits", forward_static()}};
    }
    tg::annotate("eager preprocess");
    update_inputs(position_ids_, +1);
    tg::annotate("eager model");
    torch::Tensor logits = model(input_ids_, position_ids_);
    tg::annotate("eager draft loop");
    draft_loop(+1);
    return {{"logits", logits}};
  }

  void capture() override {
    require_prepared("capture");
    if (scenario_.mutant == Mutant::kCacheKeyWithoutDraftLen && graphs_.count(graph_cache_index(scenario_)) > 0) {
      return;  // the mutant's cache says this key is captured already
    }
    const Protocol protocol = scenario_.protocol;
    const bool postprocess_capture =
        protocol == Protocol::kSeedPr || protocol == Protocol::kSnapshotRestore;
    if (protocol == Protocol::kSnapshotRestore) {
      tg::annotate("snapshot kv_lens");
      kv_snapshot_.copy_(kv_lens_);
    }
    for (std::int32_t w = 0; w < scenario_.warmups_count; ++w) {
      tg::annotate("warmup forward");
      forward_static();
      if (protocol == Protocol::kReference) {
        tg::annotate("warmup restore (draft loop, then postprocess)");
        draft_loop(-1);
        update_inputs(static_position_ids_, -1);
      } else if (protocol != Protocol::kPreFix) {
        tg::annotate("warmup postprocess");
        update_inputs(static_position_ids_, -1);
      }
    }
    graphs_.erase(graph_cache_index(scenario_));
    Captured captured{std::make_unique<tg::CUDAGraph>(options_.graphs), {}};
    tg::annotate("capture forward (recorded)");
    // A capture-only switch: the forward reads the static inputs while the
    // graph is recorded; the mutant never switches it back.
    forward_reads_static_ = true;
    {
      tg::StreamGuard on_capture_stream(stream_);
      captured.graph->capture_begin(pool_);
      try {
        captured.output = forward_static();
        captured.graph->capture_end();
      } catch (...) {
        forward_reads_static_ = false;
        try {
          captured.graph->capture_end();
        } catch (const std::exception&) {
          // Expected: the capture was invalidated by the failure being propagated.
        }
        throw;
      }
    }
    if (trtllm_.weak_outputs || scenario_.mutant == Mutant::kPoolOutputAlias) {
      // Only a non-owning alias of the output is kept: the pool sees its block as free.
      const torch::Tensor& out = captured.output;
      captured.output = torch::from_blob(out.data_ptr(), out.sizes(), out.strides(), out.options());
    }
    graphs_[graph_cache_index(scenario_)] = std::move(captured);
    if (scenario_.mutant != Mutant::kCaptureOverrideLeaks) forward_reads_static_ = false;
    if (postprocess_capture) {
      tg::annotate("postprocess after capture");
      update_inputs(static_position_ids_, -1);
    }
    if (protocol == Protocol::kSnapshotRestore) {
      tg::annotate("restore kv_lens");
      kv_lens_.copy_(kv_snapshot_);
    }
  }

  std::vector<NamedTensor> replay() override {
    require_prepared("replay");
    const auto it = graphs_.find(graph_cache_index(scenario_));
    if (it == graphs_.end()) throw_replay_before_capture(scenario_.key);
    const std::int64_t copied = replay_copied_tokens(scenario_);
    tg::annotate("replay input copy");
    static_input_ids_.narrow(0, 0, copied).copy_(input_ids_.narrow(0, 0, copied));
    static_position_ids_.narrow(-1, 0, copied).copy_(position_ids_.narrow(-1, 0, copied));
    tg::annotate("graph replay");
    it->second.graph->replay();
    const torch::Tensor& out = it->second.output;
    return {{"logits", out.narrow(0, 0, std::min<std::int64_t>(num_tokens_, out.size(0)))}};
  }

 private:
  struct Captured {
    std::unique_ptr<tg::CUDAGraph> graph;
    torch::Tensor output;
  };

  void require_prepared(const char* call) const {
    if (!prepared_) throw UsageError(std::string(call) + " called before prepare()");
  }

  // _preprocess_inputs (sign +1) and _postprocess_inputs (sign -1) on the
  // given position ids; the slice bounds are host values, baked at capture.
  void update_inputs(const torch::Tensor& position_ids, int sign) {
    const Scenario& s = scenario_;
    auto apply = [&](torch::Tensor dst, const torch::Tensor& src) {
      if (dst.numel() == 0) return;
      if (sign > 0) dst.add_(src); else dst.sub_(src);
    };
    const std::int64_t gen_tokens = num_tokens_ - num_ctx_tokens_;
    if (s.mutant == Mutant::kOffsetMisalignment && s.num_dummy_requests > 0) {
      // The bug: the previous tensor's tokens taken as if the dummies came first.
      const std::int64_t shift = std::int64_t{s.num_dummy_requests} * (1 + s.key.draft_len);
      apply(position_ids.narrow(-1, num_ctx_tokens_, gen_tokens - shift),
            pos_offsets_.narrow(0, shift, gen_tokens - shift));
      apply(position_ids.narrow(-1, num_tokens_ - shift, shift), pos_offsets_.narrow(0, 0, shift));
    } else {
      apply(position_ids.narrow(-1, num_ctx_tokens_, gen_tokens), pos_offsets_.narrow(0, 0, gen_tokens));
    }
    const bool chunked_branch = s.num_chunked_ctx_requests > 0 &&
                                !(sign < 0 && s.mutant == Mutant::kChunkedBranchAsymmetry);
    if (chunked_branch) {
      apply(kv_lens_.narrow(0, s.num_contexts - s.num_chunked_ctx_requests, s.num_chunked_ctx_requests),
            kv_offsets_.narrow(0, 0, s.num_chunked_ctx_requests));
    } else if (s.mutant == Mutant::kPaddedRowsNotInert && s.num_dummy_requests > 0) {
      // The bug: rows of the previous tensor taken as if the dummies came first.
      const std::int64_t rows = s.num_generations, shift = s.num_dummy_requests;
      apply(kv_lens_.narrow(0, s.num_contexts, rows - shift), kv_offsets_.narrow(0, shift, rows - shift));
      apply(kv_lens_.narrow(0, s.num_contexts + rows - shift, shift), kv_offsets_.narrow(0, 0, shift));
    } else {
      // The mutant sizes the update by the batch's real requests (baked at capture).
      const std::int64_t count = s.mutant == Mutant::kHostValueBaked
                                     ? s.num_generations - s.num_dummy_requests
                                     : std::min(s.num_generations, s.kv_offsets_count());
      apply(kv_lens_.narrow(0, s.num_contexts, count), kv_offsets_.narrow(0, 0, count));
    }
  }

  torch::Tensor model(const torch::Tensor& input_ids, const torch::Tensor& position_ids) {
    const torch::Tensor ids = input_ids.narrow(0, 0, num_tokens_);
    const torch::Tensor embedded = embedding_.index_select(0, ids.remainder(kEmbeddingRows));
    const torch::Tensor high = ids.div(kEmbeddingRows, "floor").to(torch::kFloat32).unsqueeze(1);
    const torch::Tensor positions =
        position_ids.narrow(-1, 0, num_tokens_).reshape({-1, num_tokens_}).t().to(torch::kFloat32);
    const torch::Tensor kv =
        kv_lens_.index_select(0, seq_ids_.narrow(0, 0, num_tokens_)).to(torch::kFloat32).unsqueeze(1);
    return torch::cat({embedded, high, positions, kv}, 1).matmul(projection_);
  }

  torch::Tensor forward_static() {
    update_inputs(static_position_ids_, +1);
    torch::Tensor logits = model(static_input_ids_, static_position_ids_);
    draft_loop(+1);
    return logits;
  }

  // The draft loop of one-model speculative decoding (as in the op-level
  // subject): step 0 moves generation rows by -(draft_len - accepted) and
  // context rows by +1, each later step every row by +1; sign -1 undoes it.
  void draft_loop(int sign) {
    const Scenario& s = scenario_;
    if (!s.draft_loop) return;
    const std::int64_t nc = s.num_contexts, bs = s.num_seqs();
    auto step0 = [&] {
      torch::Tensor gen = kv_lens_.narrow(0, nc, bs - nc);
      if (gen.numel() > 0) {
        if (sign > 0) gen.sub_(rejected_.narrow(0, 0, bs - nc)); else gen.add_(rejected_.narrow(0, 0, bs - nc));
      }
      if (nc > 0) kv_lens_.narrow(0, 0, nc).add_(sign);
    };
    auto later_step = [&] {
      if (bs > 0) kv_lens_.narrow(0, 0, bs).add_(sign);
    };
    if (sign > 0) {
      step0();
      for (std::int32_t step = 1; step < s.key.draft_len; ++step) later_step();
    } else {
      for (std::int32_t step = 1; step < s.key.draft_len; ++step) later_step();
      step0();
    }
  }

  TorchSubjectOptions options_;
  TrtllmTorchOptions trtllm_;
  torch::Tensor input_ids_, position_ids_, static_input_ids_, static_position_ids_, seq_lens_,
      kv_lens_, seq_ids_, pos_offsets_, kv_offsets_, rejected_, kv_snapshot_;
  torch::Tensor arena_;
  torch::Tensor embedding_, projection_;
  std::unique_ptr<tg::CUDAGraph> pool_owner_;  // CUDA: keeps pool_ usable
  std::vector<NamedTensor> persistent_;
  tg::CaptureStream stream_;
  tg::MempoolId_t pool_{0, 0};
  std::map<std::int64_t, Captured> graphs_;
  Scenario scenario_;
  bool prepared_ = false;
  bool forward_reads_static_ = false;  // set while capturing (capture-override-leaks: kept)
  std::int64_t num_tokens_ = 0;
  std::int64_t num_ctx_tokens_ = 0;
  std::vector<std::int32_t> staging_;  // prepare()'s one upload
};

}  // namespace

std::unique_ptr<TorchSubject> make_trtllm_torch_subject(const TorchSubjectOptions& options,
                                                        TrtllmTorchOptions trtllm) {
  return std::make_unique<TrtllmTorch>(options, trtllm);
}

}  // namespace capcheck
