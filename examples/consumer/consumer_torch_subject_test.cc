// A LibTorch capture path of the consumer's own under capcheck's properties,
// from a project outside capcheck's tree: a runner that applies the kv
// offsets in place before its model and undoes them after each warmup. With
// `undo_after_capture` it also undoes them after the capture, which leaves
// kv_lens moved (the seed-pr class): capture_preserves_inputs finds it.
#include <gtest/gtest.h>

#include "capcheck/runner.h"
#include "capcheck/torch_subject.h"

namespace {

namespace tg = capcheck::torch_graph;

class MiniRunner final : public capcheck::TorchSubject {
 public:
  MiniRunner(const capcheck::TorchSubjectOptions& o, bool undo_after_capture)
      : options_(o), undo_after_capture_(undo_after_capture) {
    const auto i32 = torch::TensorOptions().dtype(torch::kInt32).device(o.device);
    kv_lens_ = torch::zeros({o.limits.seqs_max}, i32);
    offsets_ = torch::zeros({o.limits.seqs_max}, i32);
  }
  void reset() override {
    graph_.reset();
    kv_lens_.zero_();
    offsets_.zero_();
  }
  void prepare(const capcheck::Scenario& s) override {
    n_ = s.num_seqs();
    kv_lens_.narrow(0, 0, n_).copy_(torch::tensor(s.kv_lens, torch::kInt32));
    offsets_.zero_();
    const auto g = static_cast<std::int64_t>(s.previous_kv_lens_offsets.size());
    if (s.num_chunked_ctx_requests == 0 && g > 0) {
      offsets_.narrow(0, s.num_contexts, g).copy_(torch::tensor(s.previous_kv_lens_offsets, torch::kInt32));
    }
    warmups_ = s.warmups_count;
  }
  std::vector<capcheck::NamedTensor> persistent_tensors() const override {
    return {{"kv_lens", kv_lens_}, {"offsets", offsets_}};
  }
  void preprocess() override { kv_lens_.add_(offsets_); }
  void postprocess() override { kv_lens_.sub_(offsets_); }
  std::vector<capcheck::NamedTensor> forward() override { return {{"out", step()}}; }
  void capture() override {
    for (int w = 0; w < warmups_; ++w) {
      step();
      postprocess();
    }
    graph_ = std::make_unique<tg::CUDAGraph>(options_.graphs);
    graph_->capture_begin();
    out_ = step();
    graph_->capture_end();
    if (undo_after_capture_) postprocess();
  }
  std::vector<capcheck::NamedTensor> replay() override {
    graph_->replay();
    return {{"out", out_}};
  }

 private:
  torch::Tensor step() {
    preprocess();
    return kv_lens_.narrow(0, 0, n_) * 2;
  }
  capcheck::TorchSubjectOptions options_;
  bool undo_after_capture_;
  torch::Tensor kv_lens_, offsets_, out_;
  std::unique_ptr<tg::CUDAGraph> graph_;
  std::int64_t n_ = 0;
  int warmups_ = 0;
};

capcheck::RunResult check(bool undo_after_capture) {
  auto subjects = capcheck::make_torch_subjects([=](const capcheck::TorchSubjectOptions& o) {
    return std::make_unique<MiniRunner>(o, undo_after_capture);
  });
  capcheck::RunConfig config;
  config.cases = 200;
  config.seed = 1;
  return capcheck::run_property(*subjects, capcheck::find_property("capture_preserves_inputs"), config);
}

TEST(Consumer, AOwnLibTorchRunnerPassesAndItsBugIsFoundAndShrunk) {
  EXPECT_TRUE(check(false).passed);
  const capcheck::RunResult broken = check(true);
  ASSERT_FALSE(broken.passed);
  EXPECT_EQ(broken.verdict.mismatch->buffer, "kv_lens");
  EXPECT_EQ(broken.counterexample->warmups_count, 0);  // shrunk
}

}  // namespace
