"""capcheck: property-based tests of CUDA graph capture, for PyTorch capture code.

A subject is a class with the TorchSubject methods (docs/python.md)::

    @capcheck.subject("my-runner", fields=["key", "warmups", "seq_lens", "kv_lens"])
    class MyRunner:
        def __init__(self, config): ...          # config.device, .seqs_max, .tokens_max, .options
        def reset(self): ...                     # graphs released, tensors zero
        def prepare(self, scenario): ...         # one iteration's inputs and metadata
        def persistent_tensors(self): ...        # {name: tensor} a capture must not change
        def static_inputs(self): ...             # {name: tensor} a replay overwrites (optional)
        def preprocess(self): ...                # _preprocess_inputs
        def postprocess(self): ...               # _postprocess_inputs
        def forward(self): ...                   # eager forward: {name: output}
        def capture(self): ...                   # warmups and torch.cuda.graph capture
        def replay(self): ...                    # copy inputs, graph.replay(): {name: output}

    capcheck.check("my-runner")                  # every property; raises PropertyFailed

Everything runs in capcheck's C++ core: the generators, shrinking, tokens,
regressions and reports are the ones of the `capcheck` command line, which
this package also is (``python3 -m capcheck run --plugin my_runner.py ...``).
On a machine without a GPU the subject's torch.cuda graph calls run on the
capture emulator (capcheck.emulated_cuda, docs/python.md).
"""

import importlib.util
import inspect
import io
import os
import sys
import contextlib

from . import _capcheck
from ._capcheck import (CaptureError, Graph, Scenario, SubjectConfig, annotate,
                        cuda_graphs_available, decode_token, encode_token, graph_pool_handle,
                        is_current_stream_capturing, synchronize, weak_ref_tensor)
from ._shim import emulated_cuda

__all__ = [
    "CaptureError", "CapcheckError", "Graph", "Option", "PropertyFailed", "Result", "Scenario",
    "SubjectConfig", "annotate", "check", "cuda_graphs_available", "decode_token",
    "emulated_cuda", "encode_token", "graph_pool_handle", "is_current_stream_capturing", "main",
    "register_subject", "reproduce", "run", "subject", "synchronize", "weak_ref_tensor",
]

# Exit codes of the command line (the C++ ExitCode).
EXIT_VIOLATED = 1
EXIT_USAGE = 2

# What pytest's options (capcheck.pytest_plugin) or a caller set for every check().
defaults = {"seed": None, "cases": None, "profile": None, "regressions": None}

# Cases per property of each profile (CAPCHECK_PROFILE or --capcheck-profile).
PROFILES = {"quick": 100, "default": 1000, "long": 20000}


class CapcheckError(Exception):
    """A command that could not run: bad usage (exit 2), a device failure, an
    incomplete run. The command's output is in `.output`."""

    def __init__(self, message, code=None, output=""):
        super().__init__(message)
        self.code = code
        self.output = output


class PropertyFailed(AssertionError):
    """A property was violated. The message is capcheck's report: the shrunk
    scenario, the first differing tensor, index and values, the op that last
    wrote it, and a `reproduce:` line."""

    def __init__(self, message, output=""):
        super().__init__(message)
        self.output = output
        self.tokens = [line.split()[3] for line in output.splitlines()
                       if line.startswith("reproduce: capcheck reproduce ")]


class Option:
    """An option of a subject (`--option NAME=VALUE`), recorded in its tokens."""

    def __init__(self, name, default, values=(), help=""):
        self.name, self.default, self.values, self.help = name, str(default), [str(v) for v in values], help


def register_subject(name, factory, *, description="", options=(), fields=None,
                     builtin_scenarios=None, ranges=None, plugin=None,
                     unimplemented_mutants=()):
    """Registers `factory` (a class, or a function of a SubjectConfig that
    returns a subject) as subject `name`, on the devices "emulator" (CPU
    tensors, the capture emulator; the default) and "cuda".

    fields: the scenario fields the subject reads (reports print only those);
    default all. builtin_scenarios: the subject reads the built-in TensorRT-LLM
    scenarios (protocol, mutant; cc1: tokens replay under it); default: when
    "protocol" is among its fields. ranges: the built-in generator narrowed for
    this subject, e.g. {"draft_loop": False, "batch_size_max": 16} (also
    draft_len_max, warmups_max, require_chunked). plugin: the file that registers it, for
    reproduce lines (default: the file that defines `factory`). unimplemented_mutants:
    names of built-in mutants the subject does not implement (`--mutant` refuses them,
    `capcheck mutants` leaves them out)."""
    if plugin is None:
        try:
            plugin = os.path.realpath(inspect.getfile(factory))
        except TypeError:
            plugin = ""
    if builtin_scenarios is None:
        builtin_scenarios = fields is None or "protocol" in fields
    opts = [(o.name, o.help, o.values, o.default) for o in options]
    try:
        factory._capcheck_name = name
    except (AttributeError, TypeError):
        pass
    _capcheck.register_subject(name, factory, description or (factory.__doc__ or "").strip().split("\n")[0],
                               opts, None if fields is None else list(fields), bool(builtin_scenarios),
                               plugin, dict(ranges or {}), list(unimplemented_mutants))
    return factory


def subject(name, **kwargs):
    """Class decorator: register_subject(name, cls, **kwargs)."""
    def decorate(cls):
        register_subject(name, cls, **kwargs)
        return cls
    return decorate


def _load_plugin(path):
    """Runs a Python plugin file (`--plugin file.py`): it registers subjects."""
    for module in list(sys.modules.values()):
        if os.path.realpath(getattr(module, "__file__", None) or "") == path:
            return  # imported already (a test module): its subjects are registered
    directory = os.path.dirname(path)
    if directory not in sys.path:
        sys.path.insert(0, directory)
    module_name = "capcheck_plugin_" + os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)


_capcheck._set_plugin_loader(_load_plugin)
_capcheck._set_shim_activator(lambda: _shim.activate_for_command())
from . import _shim  # noqa: E402  (after the module it uses)


def main(argv=None):
    """Runs one capcheck command line (`python3 -m capcheck ...`); returns its
    exit code. KeyboardInterrupt in a subject stops the run (what was found is
    reported) and is raised again here."""
    argv = list(sys.argv[1:] if argv is None else argv)
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        code = _capcheck.main(argv)
    finally:
        _shim.end_command()
        _capcheck._end_command()
    if _capcheck._interrupted():
        raise KeyboardInterrupt
    return code


class Result:
    """What a command printed and its exit code."""

    def __init__(self, code, output):
        self.code, self.output = code, output

    def __repr__(self):
        return "Result(code={}, output={!r})".format(self.code, self.output[-200:])


@contextlib.contextmanager
def _captured_fds():
    """Captures file descriptors 1 and 2 (the C++ core writes to them) into a string."""
    sys.stdout.flush()
    sys.stderr.flush()
    buffer = io.StringIO()
    import tempfile
    with tempfile.TemporaryFile(mode="w+b") as sink:
        saved = os.dup(1), os.dup(2)
        try:
            os.dup2(sink.fileno(), 1)
            os.dup2(sink.fileno(), 2)
            yield buffer
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
            sink.seek(0)
            buffer.write(sink.read().decode("utf-8", "replace"))


def _subject_name(subject):
    if isinstance(subject, str):
        return subject
    registered = getattr(subject, "_capcheck_name", None)
    if registered:
        return registered
    raise TypeError("subject: a registered name (or a class registered with @capcheck.subject)")


def _command(command, subject, properties, device, options, extra):
    args = [command]
    if subject is not None:
        args += ["--subject", _subject_name(subject)]
    for prop in properties or ():
        args += ["--property", prop]
    if device:
        args += ["--backend", device]
    for key, value in (options or {}).items():
        args += ["--option", "{}={}".format(key, value)]
    return args + list(extra)


def run(subject, properties=None, *, cases=None, seed=None, profile=None, protocol=None,
        mutant=None, device=None, options=None, regressions=None, json=None, extra=()):
    """`capcheck run` on `subject` (a name): every property, or `properties`.
    Returns a Result (the exit code and everything the command printed).
    cases/seed/profile/regressions default to capcheck.defaults (pytest's
    --capcheck-* options), then CAPCHECK_PROFILE; under CI=true seeds are
    derived from property names."""
    profile = profile or defaults["profile"] or os.environ.get("CAPCHECK_PROFILE")
    if profile is not None and profile not in PROFILES:
        raise CapcheckError("profile {!r}: one of {}".format(profile, ", ".join(PROFILES)), EXIT_USAGE)
    cases = cases or defaults["cases"] or (PROFILES[profile] if profile else None)
    seed = seed if seed is not None else defaults["seed"]
    regressions = regressions or defaults["regressions"]
    more = []
    if cases is not None:
        more += ["--cases", str(cases)]
    if seed is not None:
        more += ["--seed", str(seed)]
    if protocol:
        more += ["--protocol", protocol]
    if mutant:
        more += ["--mutant", mutant]
    if regressions:
        os.makedirs(regressions, exist_ok=True)  # a new suite starts with none
        more += ["--regressions", os.fspath(regressions)]
    if json:
        more += ["--json", os.fspath(json)]
    args = _command("run", subject, properties, device, options, more + list(extra))
    with _captured_fds() as out:
        code = main(args)
    return Result(code, out.getvalue())


def _raise_for(result, what):
    if result.code == 0:
        return result
    if result.code == EXIT_VIOLATED:
        raise PropertyFailed(_failure_text(result.output), result.output)
    raise CapcheckError("{} exited {}:\n{}".format(what, result.code, result.output.strip()),
                        result.code, result.output)


def _failure_text(output):
    """The failures of a run's output: each "--- ... violated" section, or all of it."""
    at = output.find("\n--- ")
    return output[at + 1:].strip() if at >= 0 else output.strip()


def check(subject, properties=None, **kwargs):
    """run(), raising PropertyFailed (an AssertionError: pytest shows the
    report) when a property is violated, CapcheckError when the run could not
    run; returns the Result when every property held."""
    return _raise_for(run(subject, properties, **kwargs), "capcheck run")


def reproduce(token, *, subject=None, options=None, device=None, properties=None, extra=()):
    """`capcheck reproduce TOKEN`: the token's scenario on its subject.
    Raises PropertyFailed when a property fails on it; returns the Result when
    every property holds."""
    args = _command("reproduce", subject, properties, device, options, list(extra))
    args.insert(1, token)
    with _captured_fds() as out:
        code = main(args)
    return _raise_for(Result(code, out.getvalue()), "capcheck reproduce")
