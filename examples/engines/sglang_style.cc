// An SGLang-style decode CUDA-graph runner in LibTorch, registered as
// capcheck subject "sglang-style" (docs/your-engine.md). Graphs are captured
// per batch size ([1, 2, 4, 8] + range(16, max + 1, 8)); a batch of raw_bs
// requests replays the graph of the next size bs, after copying its inputs
// into the static buffers [:raw_bs] and resetting the padded rows
// [raw_bs:bs] (positions 0, seq_lens 1, out_cache_loc the reserved slot 0,
// req_pool_indices the reserved request 0). The forward looks up rotary
// features by position (an index_select, as RotaryEmbedding does), writes
// the KV cache at out_cache_loc and scales by seq_lens.
//
// --option bug=positions-not-reset leaves positions and seq_lens of the
// padded rows as the last batch or anything else left them (sglang #24361,
// fixed by sglang #24401): a stale position past the rotary table is an
// illegal access in the graph.
//
// Its own scenario generator: decode batches of one token per request.
#include <capcheck/torch_subject.h>

#include <algorithm>
#include <map>

namespace {

namespace tg = capcheck::torch_graph;
using Graph = tg::CUDAGraph;  // the seam: at::cuda::CUDAGraph on CUDA tensors

constexpr std::int64_t kHidden = 2;
constexpr std::int64_t kVocab = 101;
constexpr std::int64_t kMaxPosition = capcheck::kPositionMagnitudeMax + 1;

class SglangStyleRunner final : public capcheck::TorchSubject {
 public:
  SglangStyleRunner(const capcheck::TorchSubjectOptions& o, bool positions_not_reset)
      : o_(o), positions_not_reset_(positions_not_reset) {
    const std::int64_t max_bs = std::max<std::int64_t>(o.limits.tokens_max, 1);
    for (std::int64_t s : {1, 2, 4, 8}) sizes_.push_back(s);
    for (std::int64_t s = 16; s < max_bs; s += 8) sizes_.push_back(s);
    if (sizes_.back() < max_bs) sizes_.push_back(max_bs);
    max_bs_ = sizes_.back();
    const auto i64 = torch::TensorOptions().dtype(torch::kLong).device(o.device);
    const auto i32 = torch::TensorOptions().dtype(torch::kInt).device(o.device);
    input_ids_ = torch::zeros({max_bs_}, i64);
    positions_ = torch::zeros({max_bs_}, i64);
    out_cache_loc_ = torch::zeros({max_bs_}, i64);
    req_pool_indices_ = torch::zeros({max_bs_}, i64);
    seq_lens_ = torch::ones({max_bs_}, i32);
    host_ = torch::zeros({5, max_bs_}, torch::kLong);
    kv_cache_ = torch::zeros({max_bs_ + 1, kHidden}, torch::TensorOptions().device(o.device));
    const auto p = torch::arange(kMaxPosition, torch::kFloat);
    cos_sin_cache_ = torch::stack({torch::remainder(p, 3), torch::remainder(p, 5)}, 1).to(o.device);
    embed_ = torch::remainder(torch::arange(kVocab * kHidden, torch::kFloat), 7)
                 .view({kVocab, kHidden}).to(o.device);
    stream_ = tg::getStreamFromPool(o.graphs);
  }

  void reset() override {
    graphs_.clear();
    for (auto* t : {&input_ids_, &positions_, &out_cache_loc_, &req_pool_indices_}) t->zero_();
    seq_lens_.fill_(1);
    kv_cache_.zero_();
  }

  void prepare(const capcheck::Scenario& s) override {
    raw_bs_ = s.num_tokens();  // one row per token: a decode batch has one per request
    bs_ = *std::lower_bound(sizes_.begin(), sizes_.end(), raw_bs_);
    warmups_ = s.warmups_count;
    auto in = host_.accessor<std::int64_t, 2>();
    std::int64_t t = 0;
    for (std::size_t r = 0; r < s.seq_lens.size(); ++r) {
      for (std::int32_t j = 0; j < s.seq_lens[r]; ++j, ++t) {
        in[0][t] = s.input_ids[static_cast<std::size_t>(t)];
        in[1][t] = s.position_ids[static_cast<std::size_t>(t)];
        in[2][t] = 1 + t;  // slot 0 is reserved for padding
        in[3][t] = 1 + static_cast<std::int64_t>(r);
        in[4][t] = s.kv_lens[r];
      }
    }
    copy_into_static(raw_bs_);
  }

  std::vector<capcheck::NamedTensor> persistent_tensors() const override {
    return {{"input_ids", input_ids_}, {"positions", positions_}, {"out_cache_loc", out_cache_loc_},
            {"req_pool_indices", req_pool_indices_}, {"seq_lens", seq_lens_}};
  }
  std::vector<capcheck::NamedTensor> static_inputs() const override { return persistent_tensors(); }
  void preprocess() override {}
  void postprocess() override {}

  std::vector<capcheck::NamedTensor> forward() override {
    copy_into_static(raw_bs_);
    return {{"logits", model(raw_bs_)}};
  }

  void capture() override {
    replay_prepare();
    for (int w = 0; w < warmups_; ++w) model(bs_);
    Captured captured{std::make_unique<Graph>(o_.graphs), {}};
    tg::StreamGuard on_capture_stream(stream_);
    captured.graph->capture_begin();
    try {
      captured.logits = model(bs_);
      captured.graph->capture_end();
    } catch (...) {
      try { captured.graph->capture_end(); } catch (const std::exception&) {}
      throw;
    }
    graphs_[bs_] = std::move(captured);
  }

  std::vector<capcheck::NamedTensor> replay() override {
    const auto it = graphs_.find(bs_);
    if (it == graphs_.end()) throw std::logic_error("no graph for batch size " + std::to_string(bs_));
    replay_prepare();
    it->second.graph->replay();
    return {{"logits", it->second.logits.narrow(0, 0, raw_bs_).clone()}};
  }

 private:
  struct Captured {
    std::unique_ptr<Graph> graph;
    torch::Tensor logits;
  };

  void copy_into_static(std::int64_t rows) {
    const auto dev = host_.narrow(1, 0, rows).to(o_.device);
    input_ids_.narrow(0, 0, rows).copy_(dev[0]);
    positions_.narrow(0, 0, rows).copy_(dev[1]);
    out_cache_loc_.narrow(0, 0, rows).copy_(dev[2]);
    req_pool_indices_.narrow(0, 0, rows).copy_(dev[3]);
    seq_lens_.narrow(0, 0, rows).copy_(dev[4]);
  }

  // CudaGraphRunner.replay_prepare: the real rows, then the padded ones reset.
  void replay_prepare() {
    copy_into_static(raw_bs_);
    const std::int64_t pad = bs_ - raw_bs_;
    if (pad == 0) return;
    out_cache_loc_.narrow(0, raw_bs_, pad).zero_();
    req_pool_indices_.narrow(0, raw_bs_, pad).zero_();
    input_ids_.narrow(0, raw_bs_, pad).zero_();
    if (!positions_not_reset_) {
      positions_.narrow(0, raw_bs_, pad).zero_();
      seq_lens_.narrow(0, raw_bs_, pad).fill_(1);
    }
  }

  torch::Tensor model(std::int64_t n) {
    const auto rope = cos_sin_cache_.index_select(0, positions_.narrow(0, 0, n));
    const auto h = embed_.index_select(0, torch::remainder(input_ids_.narrow(0, 0, n), kVocab)) + rope;
    kv_cache_.index_put_({out_cache_loc_.narrow(0, 0, n)}, h);
    const auto scale = torch::remainder(seq_lens_.narrow(0, 0, n), 11).to(torch::kFloat).unsqueeze(1);
    return h * (scale + 1) + kv_cache_.index_select(0, out_cache_loc_.narrow(0, 0, n));
  }

  capcheck::TorchSubjectOptions o_;
  bool positions_not_reset_;
  std::vector<std::int64_t> sizes_;
  std::int64_t max_bs_ = 1, raw_bs_ = 1, bs_ = 1;
  int warmups_ = 0;
  torch::Tensor input_ids_, positions_, out_cache_loc_, req_pool_indices_, seq_lens_, host_;
  torch::Tensor kv_cache_, cos_sin_cache_, embed_;
  tg::CaptureStream stream_;
  std::map<std::int64_t, Captured> graphs_;
};

// Decode batches: 1..batch_size_max requests of one token each, past lengths
// from one seed (so they shrink together), warmups 0..warmups_max.
rc::Gen<capcheck::Scenario> decode_batches(const capcheck::GenOptions& ranges,
                                           const capcheck::SubjectOptions&) {
  return rc::gen::exec([ranges] {
    capcheck::Scenario s;
    const auto n = *rc::gen::inRange<std::int32_t>(1, ranges.batch_size_max + 1);
    s.warmups_count = *rc::gen::inRange<std::int32_t>(0, ranges.warmups_max + 1);
    const auto pasts = capcheck::seeded_values(*rc::gen::inRange<std::uint32_t>(0, 1u << 31), n,
                                               ranges.past_kv_len_max + 1);
    s.input_ids = capcheck::seeded_values(*rc::gen::inRange<std::uint32_t>(0, 1u << 31), n,
                                          ranges.vocab_size);
    s.key = capcheck::GraphKey{n, 0};
    s.num_generations = n;
    s.seq_lens.assign(static_cast<std::size_t>(n), 1);
    s.kv_lens.clear();
    s.position_ids.clear();
    for (const auto past : pasts) {
      s.kv_lens.push_back(past + 1);
      s.position_ids.push_back(past);
    }
    s.previous_pos_id_offsets.assign(static_cast<std::size_t>(n), 0);
    s.previous_kv_lens_offsets.assign(static_cast<std::size_t>(n), 0);
    s.num_accepted_tokens.assign(static_cast<std::size_t>(n), 0);
    capcheck::validate(s);
    return s;
  });
}

capcheck::SubjectEntry sglang_style_entry() {
  auto entry = capcheck::torch_subject_entry(
      "sglang-style", "an SGLang-style decode runner: batch-size buckets, padded rows reset",
      [](const capcheck::TorchSubjectOptions& o, const capcheck::SubjectOptions& options) {
        return std::make_unique<SglangStyleRunner>(o, options.at("bug") == "positions-not-reset");
      },
      {{"bug", "a real defect to switch in", {"none", "positions-not-reset"}, "none"}});
  entry.fields = capcheck::kFieldKey | capcheck::kFieldWarmups | capcheck::kFieldKvLens |
                 capcheck::kFieldInputIds | capcheck::kFieldPositionIds;
  entry.generator = decode_batches;
  return entry;
}

CAPCHECK_REGISTER_SUBJECT(sglang_style, sglang_style_entry());

}  // namespace
