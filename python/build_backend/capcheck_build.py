"""The PEP 517 build backend of `pip install .` (pyproject.toml; docs/python.md).

It uses only the standard library, CMake and the project's own CMake build:

1. asks the interpreter that runs it (the one pip installs for) which torch it
   imports, in a subprocess from which pip's build isolation is taken away:
   the module must be built against that torch's LibTorch, and isolation
   hides the system site-packages where it usually lives;
2. configures a build directory (default build/pip in the checkout, kept
   between installs so that a second one is incremental) with only what the
   module needs: the Python module and LibTorch ON, tests, benchmarks,
   fuzzers and the raw CUDA backend OFF, CAPCHECK_PYTHON set to that
   interpreter and, for a torch that ships its CMake files (the PyTorch
   wheel), Torch_DIR set to them;
3. builds the module's targets, `cmake --install --component python` into a
   staging directory, and zips that as a wheel with python/make_wheel.py.

Settings, as pip's `--config-settings KEY=VALUE` (also `-C` from pip 23.1) or,
when that is not given, the environment:

  build-dir  / CAPCHECK_PIP_BUILD_DIR    the build directory (relative paths
             are taken from the checkout). One that this backend did not
             configure (build/dev, build/ci) is used as it is configured,
             with no option changed; its module must be for this
             interpreter and this torch.
  cmake-args / CAPCHECK_PIP_CMAKE_ARGS   more configure arguments, split like
             a shell line and given after the backend's own, so they win:
             e.g. "-DCAPCHECK_ENABLE_CUDA=ON" or
             "-DCMAKE_PREFIX_PATH=/opt/deps".

Progress (CMake's and the compiler's output) goes to stderr, which pip shows
with `pip install -v .`, and in full when the build fails. A failure ends with
one line, "capcheck build: error: ...", that says what is missing.
"""

import importlib.util
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time

SOURCE_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_BUILD_DIR = os.path.join("build", "pip")
CMAKE_MINIMUM = (3, 25)  # the top-level cmake_minimum_required

# What a build directory configured by this backend is configured with:
# the module, and nothing that the module does not link (CMakeLists.txt).
MODULE_OPTIONS = [
    ("CMAKE_BUILD_TYPE", "Release"),
    ("CAPCHECK_ENABLE_PYTHON", "ON"),
    ("CAPCHECK_ENABLE_TORCH", "ON"),
    ("CAPCHECK_ENABLE_CUDA", "OFF"),
    ("CAPCHECK_BUILD_CLI", "ON"),  # the module links the command line's library
    ("CAPCHECK_BUILD_TESTS", "OFF"),
    ("CAPCHECK_BUILD_BENCH", "OFF"),
    ("CAPCHECK_BUILD_FUZZ_REPLAYS", "OFF"),
    ("CAPCHECK_FUZZ", "OFF"),
    ("CAPCHECK_SANITIZE", "OFF"),
    ("CAPCHECK_INSTALL", "OFF"),
]
# What the "python" install component installs (python/CMakeLists.txt): the
# module, and the torch backend module it loads (which brings the capture
# emulator's library with it).
MODULE_TARGETS = ["capcheck_python", "capcheck_torch"]
# Written into a build directory this backend configured: what it was
# configured for. A directory without it is someone else's (used as is).
STAMP = "capcheck-pip-build.json"

# Run by the target interpreter: what it imports as torch.
_PROBE = r"""
import json, os, sys
out = {"executable": sys.executable, "python": "%d.%d" % sys.version_info[:2]}
try:
    import torch
    out["torch"] = torch.__version__
    out["torch_path"] = os.path.dirname(os.path.realpath(torch.__file__))
    out["cmake_prefix"] = torch.utils.cmake_prefix_path
    out["cuda"] = torch.version.cuda
except Exception as e:
    out["error"] = "%s: %s" % (type(e).__name__, e)
print(json.dumps(out))
"""

_CONFIGURE_HINT = ("; on Debian, scripts/setup.sh installs the C++ dependencies and the compiler;"
                   " elsewhere give their prefix with --config-settings"
                   " cmake-args=-DCMAKE_PREFIX_PATH=...")


class BuildError(Exception):
    """A failure with a message for the user (no traceback)."""


def _log(message):
    print("capcheck build: " + message, file=sys.stderr, flush=True)


def _hook(function):
    """Turns a BuildError into one clear line on stderr and exit status 1."""
    def wrapper(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except BuildError as e:
            _log("error: {}".format(e))
            raise SystemExit(1)
    wrapper.__name__ = function.__name__
    wrapper.__doc__ = function.__doc__
    return wrapper


def _make_wheel():
    """python/make_wheel.py, loaded from its file (python/ is not put on
    sys.path: it holds the capcheck package's sources)."""
    path = os.path.join(SOURCE_DIR, "python", "make_wheel.py")
    spec = importlib.util.spec_from_file_location("capcheck_make_wheel", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _version():
    """The project's version, from the top-level project() call."""
    with open(os.path.join(SOURCE_DIR, "CMakeLists.txt"), encoding="utf-8") as f:
        match = re.search(r"project\(\s*capcheck\s+VERSION\s+([0-9.]+)", f.read())
    if not match:
        raise BuildError("no `project(capcheck VERSION ...)` in CMakeLists.txt")
    return match.group(1)


def _setting(config_settings, key, variable):
    """A config setting (a string, or a list when given more than once),
    else the environment variable, else None."""
    value = (config_settings or {}).get(key)
    if isinstance(value, (list, tuple)):
        value = " ".join(value)
    if value is None:
        value = os.environ.get(variable)
    return value or None


def _build_dir(config_settings):
    path = _setting(config_settings, "build-dir", "CAPCHECK_PIP_BUILD_DIR") or DEFAULT_BUILD_DIR
    return os.path.abspath(os.path.join(SOURCE_DIR, os.path.expanduser(path)))


def _cmake_args(config_settings):
    return shlex.split(_setting(config_settings, "cmake-args", "CAPCHECK_PIP_CMAKE_ARGS") or "")


def _is_isolation_dir(path):
    """Whether a PYTHONPATH entry is pip's build-isolation site directory
    (pip-build-env-*/site, whose sitecustomize.py drops the system
    site-packages from sys.path)."""
    return "pip-build-env-" in path and os.path.isfile(os.path.join(path, "sitecustomize.py"))


def _environment():
    """os.environ for the interpreter and CMake (which runs the interpreter
    too), with pip's build isolation taken out: its site directory off
    PYTHONPATH, its bin directories off PATH, and PYTHONNOUSERSITE, which pip
    sets, unset (a torch installed with --user is then seen, as it is when
    the package is imported). Anything else the user set is kept."""
    env = dict(os.environ)
    entries = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    isolation = [p for p in entries if _is_isolation_dir(p)]
    if not isolation:
        return env
    roots = [os.path.dirname(p) for p in isolation]
    kept = [p for p in entries if p not in isolation]
    if kept:
        env["PYTHONPATH"] = os.pathsep.join(kept)
    else:
        env.pop("PYTHONPATH", None)
    env.pop("PYTHONNOUSERSITE", None)
    path = env.get("PATH", "").split(os.pathsep)
    env["PATH"] = os.pathsep.join(p for p in path if not any(p.startswith(r + os.sep) for r in roots))
    return env


def _probe(python, env):
    """What `python` imports as torch (a dict, see _PROBE)."""
    try:
        result = subprocess.run([python, "-c", _PROBE], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, universal_newlines=True, timeout=300)
    except OSError as e:
        raise BuildError("cannot run {}: {}".format(python, e))
    try:
        return json.loads(result.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise BuildError("{} did not answer which torch it imports:\n{}".format(python, result.stderr))


def _target(env):
    """The interpreter the wheel is for (this one), and its torch. A clear
    error when it has none."""
    info = _probe(sys.executable, env)
    if "error" in info:
        hint = ""
        if sys.prefix != sys.base_prefix:
            hint = (" (this interpreter runs in the virtual environment {}; a build front end that"
                    " builds in a virtual environment of its own needs its no-isolation option)"
                    .format(sys.prefix))
        raise BuildError(
            "{} cannot import torch ({}){}. The module is built against the LibTorch of the torch"
            " that the interpreter installing it imports: install torch for this interpreter (Debian:"
            " apt-get install python3-torch; or the PyTorch wheel), or run pip with one that has"
            " torch (on Debian: /usr/bin/python3 -m pip install .)".format(
                sys.executable, info["error"], hint))
    return info


def _cmake(env):
    """The cmake program, checked against the minimum version."""
    cmake = shutil.which("cmake", path=env.get("PATH"))
    if not cmake:
        raise BuildError("CMake {}.{} or newer is needed and `cmake` is not on PATH"
                         " (Debian: apt-get install cmake; see scripts/setup.sh)".format(*CMAKE_MINIMUM))
    out = subprocess.run([cmake, "--version"], env=env, stdout=subprocess.PIPE,
                         universal_newlines=True).stdout
    match = re.search(r"version (\d+)\.(\d+)", out)
    if not match or (int(match.group(1)), int(match.group(2))) < CMAKE_MINIMUM:
        raise BuildError("CMake {}.{} or newer is needed; {} is {}".format(
            *CMAKE_MINIMUM, cmake, out.splitlines()[0] if out else "unknown"))
    return cmake


def _stderr_fd():
    try:
        return sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        return None


def _run(command, env, what, hint=""):
    """Runs a command with its output on stderr; a BuildError naming `what`
    (and `hint`) when it fails."""
    _log("$ " + " ".join(shlex.quote(c) for c in command))
    start = time.monotonic()
    try:
        rc = subprocess.call(command, env=env, stdout=_stderr_fd(), stderr=subprocess.STDOUT)
    except OSError as e:
        raise BuildError("{}: cannot run {}: {}".format(what, command[0], e))
    if rc != 0:
        raise BuildError("{} failed (exit status {}; its output is above){}".format(
            what, rc, hint))
    _log("{} took {:.0f} s".format(what, time.monotonic() - start))


def _read_cache(build_dir):
    """CMakeCache.txt as {name: value}, {} when absent."""
    cache = {}
    try:
        with open(os.path.join(build_dir, "CMakeCache.txt"), encoding="utf-8", errors="replace") as f:
            for line in f:
                match = re.match(r"([A-Za-z0-9_.-]+):[A-Z]+=(.*)$", line.rstrip("\n"))
                if match:
                    cache[match.group(1)] = match.group(2)
    except FileNotFoundError:
        pass
    return cache


def _read_stamp(build_dir):
    try:
        with open(os.path.join(build_dir, STAMP), encoding="utf-8") as f:
            return json.load(f)
    except (FileNotFoundError, ValueError):
        return None


def _torch_dir(torch):
    """The torch's CMake package directory where it ships one (the PyTorch
    wheel: torch/share/cmake/Torch); None for a LibTorch CMake finds on its
    own (Debian's python3-torch: /usr/lib/<arch>/cmake/Torch)."""
    path = os.path.join(torch.get("cmake_prefix") or "", "Torch")
    return path if os.path.isfile(os.path.join(path, "TorchConfig.cmake")) else None


def _cuda_path(env, torch, user_args):
    """A LibTorch built with CUDA (or CAPCHECK_ENABLE_CUDA=ON) needs the CUDA
    toolkit at configure time: /usr/local/cuda/bin is put on PATH when nvcc
    is not on it already."""
    cuda_on = re.compile(r"-DCAPCHECK_ENABLE_CUDA(:\w+)?=(ON|AUTO|TRUE|YES|1)$", re.I)
    wants_cuda = torch.get("cuda") or any(cuda_on.match(a) for a in user_args)
    if (wants_cuda and not shutil.which("nvcc", path=env.get("PATH"))
            and os.access("/usr/local/cuda/bin/nvcc", os.X_OK)):
        env["PATH"] = env.get("PATH", "") + os.pathsep + "/usr/local/cuda/bin"
        _log("nvcc: /usr/local/cuda/bin added to PATH")


def _check_foreign_tree(build_dir, cache, target, env):
    """A build directory configured by hand (build/dev, build/ci): it must
    build the module, from this checkout, for this interpreter's torch."""
    home = cache.get("CMAKE_HOME_DIRECTORY", "")
    if not home or not os.path.isdir(home) or not os.path.samefile(home, SOURCE_DIR):
        raise BuildError("{} was configured from another source tree ({})".format(build_dir, home))
    python = cache.get("CAPCHECK_PYTHON_MODULE_PYTHON")
    if not python:
        raise BuildError("{} is configured without the Python module (CAPCHECK_ENABLE_PYTHON; its"
                         " configure output says why); choose another build-dir".format(build_dir))
    theirs = _probe(python, env) if os.path.exists(python) else {"error": "not found"}

    def describe(info):
        if "error" in info:
            return "which cannot import torch: {}".format(info["error"])
        return "Python {}, torch {} in {}".format(info["python"], info["torch"], info["torch_path"])

    keys = ("python", "torch", "torch_path")
    if "error" in theirs or [theirs.get(k) for k in keys] != [target.get(k) for k in keys]:
        raise BuildError("{} builds the module for {} ({}), not for {} ({}); choose another"
                         " build-dir".format(build_dir, python, describe(theirs), sys.executable,
                                             describe(target)))


def _build(config_settings):
    """Configures (where needed) and builds the module; returns
    (build_dir, target info, environment)."""
    env = _environment()
    if env.get("PYTHONPATH") != os.environ.get("PYTHONPATH"):
        _log("running under pip's build isolation: asking {} for its torch without it"
             .format(sys.executable))
    cmake = _cmake(env)
    target = _target(env)
    _log("building for {} (Python {}) and its torch {} ({})".format(
        target["executable"], target["python"], target["torch"], target["torch_path"]))
    build_dir = _build_dir(config_settings)
    user_args = _cmake_args(config_settings)
    _cuda_path(env, target, user_args)
    cache = _read_cache(build_dir)
    stamp = _read_stamp(build_dir)

    if cache and stamp is None:
        # Someone else's tree: its configuration is left alone.
        _log("using the configured build directory {} as it is".format(build_dir))
        _check_foreign_tree(build_dir, cache, target, env)
        if user_args:
            _run([cmake, "-S", SOURCE_DIR, "-B", build_dir] + user_args, env,
                 "CMake configure of " + build_dir, _CONFIGURE_HINT)
    else:
        wanted = {"source": SOURCE_DIR, "python": target["executable"], "torch": target["torch"],
                  "torch_path": target["torch_path"], "cmake_args": user_args}
        if stamp != wanted:
            fresh = bool(cache)
            if fresh:
                changed = ", ".join("{} {!r} -> {!r}".format(k, (stamp or {}).get(k), v)
                                    for k, v in wanted.items() if (stamp or {}).get(k) != v)
                _log("{} was configured for something else ({}): configuring it afresh".format(
                    build_dir, changed))
            else:
                _log("configuring {} (the first build compiles capcheck's core, the LibTorch"
                     " backend and the module: several minutes; later installs rebuild only what"
                     " changed)".format(build_dir))
            os.makedirs(build_dir, exist_ok=True)
            # Until the configure succeeds the directory stays this backend's
            # (configured afresh next time), never "someone else's".
            with open(os.path.join(build_dir, STAMP), "w", encoding="utf-8") as f:
                json.dump({"configuring": True}, f)
            command = [cmake, "-S", SOURCE_DIR, "-B", build_dir]
            if fresh:
                command.append("--fresh")
            if fresh or not cache:
                generator = "Ninja" if shutil.which("ninja", path=env.get("PATH")) else "Unix Makefiles"
                command += ["-G", generator]
            command += ["-D{}={}".format(k, v) for k, v in MODULE_OPTIONS]
            command.append("-DCAPCHECK_PYTHON=" + target["executable"])
            torch_dir = _torch_dir(target)
            if torch_dir:
                command.append("-DTorch_DIR=" + torch_dir)
            command += user_args
            _run(command, env, "CMake configure of " + build_dir, _CONFIGURE_HINT)
            with open(os.path.join(build_dir, STAMP), "w", encoding="utf-8") as f:
                json.dump(wanted, f, indent=2)
        else:
            _log("reusing {} (configured for this interpreter and torch)".format(build_dir))
        cache = _read_cache(build_dir)
        if not cache.get("CAPCHECK_PYTHON_MODULE_PYTHON"):
            raise BuildError("CMake configured {} without the Python module".format(build_dir))

    command = [cmake, "--build", build_dir, "--target"] + MODULE_TARGETS
    if cache.get("CMAKE_GENERATOR") != "Ninja" and "CMAKE_BUILD_PARALLEL_LEVEL" not in env:
        command += ["--parallel", str(os.cpu_count() or 1)]
    _run(command, env, "build in " + build_dir)
    return build_dir, target, env


# --- PEP 517 hooks ----------------------------------------------------------

def get_requires_for_build_wheel(config_settings=None):
    """Nothing to install: CMake, a compiler and torch are the machine's."""
    return []


def get_requires_for_build_sdist(config_settings=None):
    return []


@_hook
def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    """The .dist-info without building: the version, this Python, and the
    torch it imports (checked here, so that a missing torch fails at once)."""
    target = _target(_environment())
    return _make_wheel().write_dist_info(metadata_directory, _version(), target["torch"])


@_hook
def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    """Builds the module and writes capcheck-VERSION-TAG.whl into
    wheel_directory; returns its file name."""
    start = time.monotonic()
    build_dir, target, env = _build(config_settings)
    stage = tempfile.mkdtemp(prefix="capcheck-wheel-")
    try:
        _run([_cmake(env), "--install", build_dir, "--component", "python", "--strip",
              "--prefix", stage], env, "install of the python component")
        package = os.path.join(stage, "capcheck")
        if not any(n.startswith("_capcheck") and n.endswith(".so")
                   for n in (os.listdir(package) if os.path.isdir(package) else [])):
            raise BuildError("`cmake --install {} --component python` installed no capcheck/_capcheck"
                             " module".format(build_dir))
        try:
            path = _make_wheel().write_wheel(stage, _version(), wheel_directory, target["torch"])
        except ValueError as e:
            raise BuildError(str(e))
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    _log("wrote {} in {:.0f} s (build directory {})".format(
        os.path.basename(path), time.monotonic() - start, build_dir))
    return os.path.basename(path)


@_hook
def build_sdist(sdist_directory, config_settings=None):
    """capcheck-VERSION.tar.gz: the files git tracks in this checkout, as
    they are in the working tree, with PKG-INFO. Needs git and a git
    checkout. A wheel made from it is built in the unpacked tree's own
    build/pip, from scratch (pip unpacks it into a new directory each time)."""
    version = _version()
    try:
        listed = subprocess.run(["git", "-C", SOURCE_DIR, "ls-files", "-z", "--cached"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        raise BuildError("an sdist is made from a git checkout, with git installed ({})".format(e))
    names = sorted({n for n in listed.decode().split("\0")
                    if n and os.path.isfile(os.path.join(SOURCE_DIR, n))})
    backend = os.path.relpath(os.path.abspath(__file__), SOURCE_DIR)
    for needed in ("pyproject.toml", backend, "python/make_wheel.py"):
        if needed not in names:
            raise BuildError("git does not track {}: an sdist without it could not build a"
                             " wheel".format(needed))
    base = "capcheck-{}".format(version)
    pkg_info = ("Metadata-Version: 2.1\nName: capcheck\nVersion: {}\nSummary: {}\n"
                .format(version, _make_wheel().SUMMARY)).encode()
    os.makedirs(sdist_directory, exist_ok=True)
    path = os.path.join(sdist_directory, base + ".tar.gz")
    with tarfile.open(path + ".partial", "w:gz", format=tarfile.PAX_FORMAT) as tar:
        for name in names:
            tar.add(os.path.join(SOURCE_DIR, name), arcname=base + "/" + name, recursive=False)
        info = tarfile.TarInfo(base + "/PKG-INFO")
        info.size = len(pkg_info)
        info.mtime = int(time.time())
        info.mode = 0o644
        tar.addfile(info, io.BytesIO(pkg_info))
    os.replace(path + ".partial", path)
    _log("wrote {} ({} files)".format(path, len(names)))
    return os.path.basename(path)
