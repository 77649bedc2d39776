// The built-in subject: TensorRT-LLM's PyTorch model engine and CUDAGraphRunner
// (tensorrt_llm/_torch/pyexecutor), reduced to what capture correctness needs.
#pragma once

#include <memory>

#include "capcheck/subject.h"

namespace capcheck {

/// A TensorRT-LLM engine subject on `backend`, with static buffers for `limits`.
std::unique_ptr<Subject> make_trtllm_subject(Backend& backend, const SubjectLimits& limits);

}  // namespace capcheck
