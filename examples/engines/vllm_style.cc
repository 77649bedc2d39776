// A vLLM-style CUDA-graph runner in LibTorch, registered as capcheck subject
// "vllm-style" (docs/your-engine.md). Persistent input buffers sized for the
// largest capture size; a batch is padded up to the nearest capture size
// ([1, 2, 4] + range(8, max + 1, 8)); the host-side inputs are copied into
// the persistent buffers before every forward and replay; the forward writes
// each token's hidden state into the KV cache through `slot_mapping`, where
// padded rows carry PAD_SLOT_ID, then attends over its request's tokens of
// this step, read back from the cache.
//
// --option bug=... switches in a real defect:
//   seq-lens-inplace    the forward advances seq_lens in place (state mutated
//                       by warmup or capture)
//   pad-slot-minus-one  padded rows write the real cache at index -1, which
//                       wraps to its last slot (vllm #43810)
//   baked-token-count   attention covers the batch's real token count, a host
//                       int baked into the graph at capture and replayed with
//                       another count of the same padded bucket
#include <capcheck/torch_subject.h>

#include <algorithm>
#include <map>

namespace {

namespace tg = capcheck::torch_graph;
// The seam: this code captures with the facade, which is at::cuda::CUDAGraph
// on CUDA tensors and the capture emulator on CPU ones.
using Graph = tg::CUDAGraph;

constexpr std::int64_t kPadSlotId = -1;
constexpr std::int64_t kHidden = 4;
constexpr std::int64_t kVocab = 97;
constexpr std::int64_t kPositions = 1024;
constexpr std::int64_t kWindow = 16;  // tokens of its request a token attends to

enum class Bug { kNone, kSeqLensInPlace, kPadSlotMinusOne, kBakedTokenCount };

class VllmStyleRunner final : public capcheck::TorchSubject {
 public:
  VllmStyleRunner(const capcheck::TorchSubjectOptions& o, Bug bug) : o_(o), bug_(bug) {
    for (std::int64_t s : {1, 2, 4}) sizes_.push_back(s);
    for (std::int64_t s = 8; s < o.limits.tokens_max; s += 8) sizes_.push_back(s);
    if (sizes_.back() < o.limits.tokens_max) sizes_.push_back(o.limits.tokens_max);
    tokens_ = sizes_.back();
    slots_ = tokens_;
    const auto i64 = torch::TensorOptions().dtype(torch::kLong).device(o.device);
    const auto f32 = torch::TensorOptions().dtype(torch::kFloat).device(o.device);
    // The persistent buffers: [input_ids, positions, slot_mapping, request, seq_len] per token.
    inputs_ = torch::zeros({5, tokens_}, i64);
    attn_slots_ = torch::zeros({tokens_, kWindow}, i64);
    attn_mask_ = torch::zeros({tokens_, kWindow}, f32);
    host_ = torch::zeros({5, tokens_}, torch::kLong);
    host_slots_ = torch::zeros({tokens_, kWindow}, torch::kLong);
    host_mask_ = torch::zeros({tokens_, kWindow}, torch::kFloat);
    kv_cache_ = torch::zeros({slots_ + 1, kHidden}, f32);  // the last row takes padded rows
    const auto rows = torch::arange(kVocab, torch::kFloat).unsqueeze(1);
    embed_ = torch::remainder(rows * torch::arange(1, kHidden + 1, torch::kFloat), 13).to(o.device);
    const auto p = torch::arange(kPositions, torch::kFloat).unsqueeze(1);
    pos_embed_ = torch::remainder(p + torch::arange(kHidden, torch::kFloat), 5).to(o.device);
    stream_ = tg::getStreamFromPool(o.graphs);
  }

  void reset() override {
    graphs_.clear();
    inputs_.zero_();
    attn_slots_.zero_();
    attn_mask_.zero_();
    kv_cache_.zero_();
  }

  // The scheduler's output for this step, padded to its capture size: the
  // last num_dummy_requests requests and the bucket's tail are padding.
  void prepare(const capcheck::Scenario& s) override {
    const std::int64_t dummies = s.num_dummy_requests * (1 + s.key.draft_len);
    real_ = s.num_tokens() - dummies;
    bucket_ = *std::lower_bound(sizes_.begin(), sizes_.end(), s.num_tokens());
    warmups_ = s.warmups_count;
    host_.zero_();
    host_slots_.fill_(slots_);
    host_mask_.zero_();
    auto in = host_.accessor<std::int64_t, 2>();
    auto slots = host_slots_.accessor<std::int64_t, 2>();
    auto mask = host_mask_.accessor<float, 2>();
    std::int64_t t = 0;
    for (std::size_t r = 0; r < s.seq_lens.size() && t < real_; ++r) {
      const std::int64_t first = t;
      for (std::int32_t j = 0; j < s.seq_lens[r] && t < real_; ++j, ++t) {
        in[0][t] = s.input_ids[static_cast<std::size_t>(t)];
        in[1][t] = s.position_ids[static_cast<std::size_t>(t)];
        in[2][t] = slots_ - 1 - t;  // the cache hands out its highest free slot first
        in[3][t] = static_cast<std::int64_t>(r);
        in[4][t] = s.kv_lens[r];
        // Causal attention over this step's tokens of the request, up to kWindow back.
        for (std::int64_t k = std::max(first, t - kWindow + 1); k <= t; ++k) {
          slots[t][t - k] = slots_ - 1 - k;
          mask[t][t - k] = 1.0f;
        }
      }
    }
    for (std::int64_t p = real_; p < bucket_; ++p) in[2][p] = kPadSlotId;
    copy_inputs();
  }

  std::vector<capcheck::NamedTensor> persistent_tensors() const override {
    return {{"input_ids", inputs_[0]}, {"positions", inputs_[1]}, {"slot_mapping", inputs_[2]},
            {"request_of_token", inputs_[3]}, {"seq_lens", inputs_[4]},
            {"attn_slots", attn_slots_}, {"attn_mask", attn_mask_}};
  }
  std::vector<capcheck::NamedTensor> static_inputs() const override { return persistent_tensors(); }
  void preprocess() override {}   // vLLM has no in-place input update
  void postprocess() override {}

  std::vector<capcheck::NamedTensor> forward() override {
    copy_inputs();
    return {{"logits", model(real_, real_)}};  // eager mode runs unpadded
  }

  void capture() override {
    for (int w = 0; w < warmups_; ++w) model(bucket_, real_);
    Captured captured{std::make_unique<Graph>(o_.graphs), {}};
    tg::StreamGuard on_capture_stream(stream_);
    captured.graph->capture_begin();
    try {
      captured.logits = model(bucket_, real_);
      captured.graph->capture_end();
    } catch (...) {
      try { captured.graph->capture_end(); } catch (const std::exception&) {}
      throw;
    }
    graphs_[bucket_] = std::move(captured);
  }

  std::vector<capcheck::NamedTensor> replay() override {
    const auto it = graphs_.find(bucket_);
    if (it == graphs_.end()) throw std::logic_error("no graph captured for size " + std::to_string(bucket_));
    copy_inputs();
    it->second.graph->replay();
    // The sampler consumes the graph's output before the next replay of the
    // same size overwrites it: what the runner hands on is a copy.
    return {{"logits", it->second.logits.narrow(0, 0, real_).clone()}};
  }

 private:
  struct Captured {
    std::unique_ptr<Graph> graph;
    torch::Tensor logits;
  };

  // The host-side inputs into the persistent buffers, the padded tail included.
  void copy_inputs() {
    inputs_.copy_(host_.to(o_.device));
    attn_slots_.copy_(host_slots_.to(o_.device));
    attn_mask_.copy_(host_mask_.to(o_.device));
  }

  torch::Tensor model(std::int64_t n, std::int64_t num_actual_tokens) {
    const auto ids = inputs_[0].narrow(0, 0, n), pos = inputs_[1].narrow(0, 0, n);
    const auto slot = inputs_[2].narrow(0, 0, n), seq = inputs_[4].narrow(0, 0, n);
    const auto h = embed_.index_select(0, torch::remainder(ids, kVocab)) +
                   pos_embed_.index_select(0, torch::remainder(pos, kPositions));
    // reshape_and_cache: padded rows carry PAD_SLOT_ID and must not land in the cache.
    if (bug_ == Bug::kPadSlotMinusOne) {
      kv_cache_.narrow(0, 0, slots_).index_put_({slot}, h);  // -1: the last real slot
    } else {
      kv_cache_.index_put_({torch::where(slot >= 0, slot, torch::full_like(slot, slots_))}, h);
    }
    auto ctx = (kv_cache_.index_select(0, attn_slots_.narrow(0, 0, n).reshape({-1}))
                    .view({n, kWindow, kHidden}) *
                attn_mask_.narrow(0, 0, n).unsqueeze(-1))
                   .sum(1);
    if (bug_ == Bug::kBakedTokenCount && num_actual_tokens < n) {
      // Attention over the real tokens only: a host int of this batch.
      ctx = torch::cat({ctx.narrow(0, 0, num_actual_tokens),
                        torch::zeros({n - num_actual_tokens, kHidden}, ctx.options())});
    }
    const auto scale = (torch::remainder(seq, 7) + 1).to(torch::kFloat).unsqueeze(1);
    auto logits = (h + ctx) * scale + (h + ctx).sum(1, true);
    if (bug_ == Bug::kSeqLensInPlace) inputs_[4].narrow(0, 0, n).add_(1);  // "for the next step"
    return logits;
  }

  capcheck::TorchSubjectOptions o_;
  Bug bug_;
  std::vector<std::int64_t> sizes_;
  std::int64_t tokens_ = 0, slots_ = 0, real_ = 0, bucket_ = 1;
  int warmups_ = 0;
  torch::Tensor inputs_, attn_slots_, attn_mask_, host_, host_slots_, host_mask_;
  torch::Tensor kv_cache_, embed_, pos_embed_;
  tg::CaptureStream stream_;
  std::map<std::int64_t, Captured> graphs_;
};

Bug parse_bug(const std::string& name) {
  if (name == "seq-lens-inplace") return Bug::kSeqLensInPlace;
  if (name == "pad-slot-minus-one") return Bug::kPadSlotMinusOne;
  if (name == "baked-token-count") return Bug::kBakedTokenCount;
  return Bug::kNone;
}

// vLLM's batches: capcheck's scenarios with the draft loop off (a separate
// drafter, not TensorRT-LLM's in-forward loop) and padding dummies as often
// as real rows of a padded bucket.
rc::Gen<capcheck::Scenario> vllm_batches(const capcheck::GenOptions& ranges,
                                         const capcheck::SubjectOptions&) {
  capcheck::GenOptions o = ranges;
  o.draft_loop = false;
  o.batch_size_max = std::min(o.batch_size_max, 16);
  return capcheck::gen_scenario(o);
}

capcheck::SubjectEntry vllm_style_entry() {
  auto entry = capcheck::torch_subject_entry(
      "vllm-style", "a vLLM-style runner: padded capture sizes, PAD_SLOT_ID KV writes",
      [](const capcheck::TorchSubjectOptions& o, const capcheck::SubjectOptions& options) {
        return std::make_unique<VllmStyleRunner>(o, parse_bug(options.at("bug")));
      },
      {{"bug", "a real defect to switch in",
        {"none", "seq-lens-inplace", "pad-slot-minus-one", "baked-token-count"}, "none"}});
  entry.fields = capcheck::kFieldKey | capcheck::kFieldWarmups | capcheck::kFieldComposition |
                 capcheck::kFieldSeqLens | capcheck::kFieldKvLens | capcheck::kFieldInputIds |
                 capcheck::kFieldPositionIds | capcheck::kFieldDummies;
  entry.generator = vllm_batches;
  return entry;
}

CAPCHECK_REGISTER_SUBJECT(vllm_style, vllm_style_entry());

}  // namespace
