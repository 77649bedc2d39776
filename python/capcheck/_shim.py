"""The torch.cuda shim: CUDA graph capture code, unchanged, on CPU tensors.

Inside ``with capcheck.emulated_cuda():`` (and while capcheck runs a Python
subject on the "emulator" device) these names of ``torch.cuda`` behave with
the capture emulator's semantics (docs/python.md, "The shim"):

    CUDAGraph                 capture_begin(pool=None), capture_end(), replay(),
                              reset(), pool(): the emulator (capcheck.Graph)
    graph(g, pool=, stream=)  the context manager: synchronize, then capture on
                              `stream` (or a side stream) until exit
    graph_pool_handle()       a pool id; graphs given one id share its blocks
    Stream, stream(s), current_stream(), default_stream(), set_stream(s),
    Stream.wait_stream/wait_event/record_event/synchronize/query,
    Event (record, wait, query, synchronize)
                              streams and events that keep the shape of CUDA
                              code: CPU work is ordered already
    synchronize()             a host synchronization: inside a capture it
                              invalidates the capture (900, then 901 at the
                              end), as on a GPU; so do Stream.synchronize()
                              and Event.synchronize()
    is_current_stream_capturing()
    empty_cache()             nothing to release

Everything else in torch.cuda is left as it is: on a machine without a GPU,
``torch.cuda.is_available()`` is still False and a tensor on device "cuda"
still raises. ``make_graphed_callables``, ``CUDAGraph.enable_debug_mode`` and
``debug_dump``, and ``Event.elapsed_time`` raise NotImplementedError. Names
bound before the shim is entered (``from torch.cuda import graph``) keep the
real ones.
"""

import contextlib
import threading

import torch

from . import _capcheck

_lock = threading.Lock()
_depth = 0          # active emulated_cuda() blocks, the command's included
_saved = {}         # (module, name) -> the real attribute
_command_owned = False


class CUDAGraph:
    """torch.cuda.CUDAGraph on the capture emulator."""

    def __init__(self, keep_graph=False):
        self._graph = _capcheck.Graph("emulator")

    def capture_begin(self, pool=None, capture_error_mode="global"):
        self._graph.capture_begin(tuple(pool) if pool is not None else (0, 0))

    def capture_end(self):
        self._graph.capture_end()

    def replay(self):
        self._graph.replay()

    def reset(self):
        self._graph.reset()

    def pool(self):
        return self._graph.pool()

    def recorded_ops(self):
        """The ops the capture recorded, in order (the emulator's own)."""
        return self._graph.recorded_ops()

    def enable_debug_mode(self):
        raise NotImplementedError("capcheck's emulated CUDAGraph has no debug mode")

    def debug_dump(self, debug_path):
        raise NotImplementedError("capcheck's emulated CUDAGraph has no debug dump")


class Event:
    """torch.cuda.Event: ordering is implicit on the CPU."""

    def __init__(self, enable_timing=False, blocking=False, interprocess=False):
        self.recorded = False

    def record(self, stream=None):
        self.recorded = True

    def wait(self, stream=None):
        pass

    def query(self):
        return True

    def synchronize(self):
        _capcheck.synchronize()

    def elapsed_time(self, end_event):
        raise NotImplementedError("capcheck's emulated events do not time")


class Stream:
    """torch.cuda.Stream: CPU work is ordered, so a stream only keeps the
    shape of the code that uses it."""

    _next_id = 1

    def __init__(self, device=None, priority=0, **kwargs):
        self.device = torch.device("cpu")
        self.priority = priority
        self.cuda_stream = Stream._next_id
        Stream._next_id += 1

    def wait_stream(self, stream):
        pass

    def wait_event(self, event):
        pass

    def record_event(self, event=None):
        event = event or Event()
        event.record(self)
        return event

    def query(self):
        return True

    def synchronize(self):
        _capcheck.synchronize()

    def __eq__(self, other):
        return isinstance(other, Stream) and other.cuda_stream == self.cuda_stream

    def __hash__(self):
        return hash(self.cuda_stream)

    def __repr__(self):
        return "<capcheck emulated stream {}>".format(self.cuda_stream)


_default_stream = Stream()
_default_stream.cuda_stream = 0
_current = threading.local()


def current_stream(device=None):
    return getattr(_current, "stream", _default_stream)


def default_stream(device=None):
    return _default_stream


def set_stream(stream):
    _current.stream = stream


@contextlib.contextmanager
def stream(s):
    previous = current_stream()
    if s is not None:
        set_stream(s)
    try:
        yield
    finally:
        set_stream(previous)


def synchronize(device=None):
    _capcheck.synchronize()


def is_current_stream_capturing():
    return _capcheck.is_current_stream_capturing()


def graph_pool_handle():
    return _capcheck.graph_pool_handle("emulator")


def empty_cache():
    pass


def make_graphed_callables(*args, **kwargs):
    raise NotImplementedError("make_graphed_callables is not emulated (docs/python.md)")


class graph:
    """torch.cuda.graph: capture into `cuda_graph` while the block runs."""

    default_capture_stream = None

    def __init__(self, cuda_graph, pool=None, stream=None, capture_error_mode="global"):
        if graph.default_capture_stream is None:
            graph.default_capture_stream = Stream()
        self.pool = () if pool is None else (pool,)
        self.capture_stream = stream if stream is not None else graph.default_capture_stream
        self.stream_ctx = None
        self.cuda_graph = cuda_graph

    def __enter__(self):
        synchronize()
        # (torch.cuda.graph also runs gc.collect() here, to free device memory
        # before the capture; the emulator has none to free, and it is most of
        # the time of a small capture)
        empty_cache()
        self.stream_ctx = globals()["stream"](self.capture_stream)
        self.stream_ctx.__enter__()
        self.cuda_graph.capture_begin(*self.pool)

    def __exit__(self, exc_type, exc_value, traceback):
        try:
            self.cuda_graph.capture_end()
        finally:
            self.stream_ctx.__exit__(exc_type, exc_value, traceback)


_NAMES = {
    "CUDAGraph": CUDAGraph, "graph": graph, "graph_pool_handle": graph_pool_handle,
    "make_graphed_callables": make_graphed_callables, "Stream": Stream, "Event": Event,
    "stream": stream, "current_stream": current_stream, "default_stream": default_stream,
    "set_stream": set_stream, "synchronize": synchronize,
    "is_current_stream_capturing": is_current_stream_capturing, "empty_cache": empty_cache,
}


def _modules():
    modules = [torch.cuda]
    for sub in ("graphs", "streams"):
        module = getattr(torch.cuda, sub, None)
        if module is not None:
            modules.append(module)
    return modules


def _enter():
    global _depth
    with _lock:
        _depth += 1
        if _depth > 1:
            return
        for module in _modules():
            for name, value in _NAMES.items():
                if module is torch.cuda or hasattr(module, name):
                    _saved[(module, name)] = getattr(module, name, None)
                    setattr(module, name, value)


def _exit():
    global _depth
    with _lock:
        _depth -= 1
        if _depth > 0:
            return
        for (module, name), value in _saved.items():
            if value is None:
                delattr(module, name)
            else:
                setattr(module, name, value)
        _saved.clear()


@contextlib.contextmanager
def emulated_cuda():
    """torch.cuda's graph, stream and synchronization calls on the capture
    emulator while the block runs (see the module's docstring for the list)."""
    _enter()
    try:
        yield
    finally:
        _exit()


def active():
    """True while the shim is in place."""
    return _depth > 0


def activate_for_command():
    """Called by the core before an emulated Python subject first runs in a command."""
    global _command_owned
    if not _command_owned:
        _command_owned = True
        _enter()


def end_command():
    global _command_owned
    if _command_owned:
        _command_owned = False
        _exit()
