"""The torch.cuda shim: CUDA capture code, unchanged, on CPU tensors."""

import pytest
import torch

import capcheck


def test_a_capture_records_and_a_replay_runs(emulated_cuda):
    kv = torch.tensor([10, 20], dtype=torch.int32)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, pool=torch.cuda.graph_pool_handle()):
        assert torch.cuda.is_current_stream_capturing()
        kv.add_(1)
        out = kv * 2
    assert not torch.cuda.is_current_stream_capturing()
    assert kv.tolist() == [10, 20]  # a capture runs nothing
    graph.replay()
    assert kv.tolist() == [11, 21] and out.tolist() == [22, 42]
    graph.replay()
    assert kv.tolist() == [12, 22] and out.tolist() == [24, 44]  # in-place updates accumulate


def test_a_python_scalar_is_baked(emulated_cuda):
    x = torch.zeros(2)
    step = 3
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        y = x + step
    step = 100
    graph.replay()
    assert y.tolist() == [3.0, 3.0]


def test_synchronize_in_a_capture_invalidates_it(emulated_cuda):
    graph = torch.cuda.CUDAGraph()
    with pytest.raises(capcheck.CaptureError) as ended:
        with torch.cuda.graph(graph):
            with pytest.raises(capcheck.CaptureError) as sync:
                torch.cuda.synchronize()
    assert sync.value.kind == 900 and ended.value.kind == 901
    assert not torch.cuda.is_current_stream_capturing()


def test_a_host_read_in_a_capture_invalidates_it(emulated_cuda):
    kv = torch.tensor([1, 2])
    graph = torch.cuda.CUDAGraph()
    with pytest.raises(capcheck.CaptureError) as ended:
        with torch.cuda.graph(graph):
            with pytest.raises(RuntimeError, match="stream is capturing"):
                kv.sum().item()
    assert ended.value.kind == 901


def test_streams_keep_the_shape_of_cuda_code(emulated_cuda):
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        assert torch.cuda.current_stream() == side
    assert torch.cuda.current_stream() == torch.cuda.default_stream()
    event = side.record_event()
    assert event.query()
    with pytest.raises(NotImplementedError):
        torch.cuda.make_graphed_callables(lambda x: x, (torch.zeros(1),))


def test_the_shim_is_undone_on_exit():
    real = torch.cuda.CUDAGraph, torch.cuda.graph, torch.cuda.synchronize
    with capcheck.emulated_cuda():
        with capcheck.emulated_cuda():
            assert torch.cuda.CUDAGraph is not real[0]
        assert torch.cuda.CUDAGraph is not real[0]  # still inside the outer block
    assert (torch.cuda.CUDAGraph, torch.cuda.graph, torch.cuda.synchronize) == real
