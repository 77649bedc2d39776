import os
import sys

sys.path.insert(0, os.path.dirname(__file__))  # the runners beside the tests

pytest_plugins = ["capcheck.pytest_plugin"]
