"""pytest integration (docs/python.md): ``-p capcheck.pytest_plugin`` or
``pytest_plugins = ["capcheck.pytest_plugin"]`` in a conftest.py.

Options, which every capcheck.check()/run() of the session takes as defaults:
  --capcheck-seed N         fixed seed (default: random; derived from the
                            property names under CI=true)
  --capcheck-cases N        generated cases per property
  --capcheck-profile P      quick (100 cases), default (1000), long (20000)
  --capcheck-regressions D  a regression directory replayed first; new
                            failures are appended to it

Fixtures:
  capcheck_device     "cuda" where CUDA graphs can run here, else "emulator"
                      (a subject's device, for check(..., device=...))
  emulated_cuda       torch.cuda's graph and stream calls on the capture
                      emulator for the test's duration
"""

import pytest

import capcheck


def pytest_addoption(parser):
    group = parser.getgroup("capcheck")
    group.addoption("--capcheck-seed", type=int, default=None, help="fixed seed for every property")
    group.addoption("--capcheck-cases", type=int, default=None, help="generated cases per property")
    group.addoption("--capcheck-profile", choices=sorted(capcheck.PROFILES), default=None,
                    help="cases per property: quick 100, default 1000, long 20000")
    group.addoption("--capcheck-regressions", default=None,
                    help="regression directory replayed first; new failures appended")


def pytest_configure(config):
    capcheck.defaults.update(
        seed=config.getoption("--capcheck-seed"),
        cases=config.getoption("--capcheck-cases"),
        profile=config.getoption("--capcheck-profile"),
        regressions=config.getoption("--capcheck-regressions"),
    )


@pytest.fixture
def capcheck_device():
    return "cuda" if capcheck.cuda_graphs_available() else "emulator"


@pytest.fixture
def emulated_cuda():
    with capcheck.emulated_cuda():
        yield
