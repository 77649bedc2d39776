"""The Python vLLM-style runner: correct, and each of its bugs found."""

import re

import pytest

import capcheck
import vllm_runner  # noqa: F401  (registers py-vllm)


def test_the_correct_runner_passes(capcheck_device):
    result = capcheck.check("py-vllm", device=capcheck_device, cases=300)
    assert re.search(r"summary: (\d+) properties run, \1 passed, 0 violated", result.output), result.output


@pytest.mark.parametrize("bug,prop,shrunk", [
    ("seq-lens-inplace", "capture_preserves_inputs", "key=(batch_size=1, draft_len=0) warmups=1"),
    ("pad-slot-minus-one", "first_replay_matches_eager", "dummies=1"),
    ("baked-token-count", "bucket_reuse_matches_eager", "key=(batch_size=1, draft_len=0)"),
])
def test_each_bug_is_found_and_shrunk(bug, prop, shrunk, capcheck_device):
    with pytest.raises(capcheck.PropertyFailed) as failed:
        capcheck.check("py-vllm", [prop], options={"bug": bug}, seed=1, device=capcheck_device)
    # On a GPU, index_put_ with a repeated index (a padded row's -1 and the
    # last real slot) keeps either write, so the smallest batch that shows
    # pad-slot-minus-one depends on the kernel's order; the emulator runs the
    # CPU kernel, whose last write wins. Elsewhere the minimum is the same.
    if not (bug == "pad-slot-minus-one" and capcheck_device == "cuda"):
        assert shrunk in str(failed.value), str(failed.value)
    token = failed.value.tokens[0]
    with pytest.raises(capcheck.PropertyFailed):
        capcheck.reproduce(token, device=capcheck_device)
    capcheck.reproduce(token, options={"bug": "none"}, device=capcheck_device)  # the fix holds
