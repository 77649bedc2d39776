"""What a Python subject's own failures become: verdicts, stops, usage errors."""

import pytest
import torch

import capcheck
import trtllm_runner


@capcheck.subject("py-index-error", fields=["key", "composition", "seq_lens", "kv_lens"])
class IndexErrorRunner(trtllm_runner.TrtllmRunner):
    """Replays of three or more requests index past a Python list."""

    def replay(self):
        if self.scenario.num_seqs() >= 3:
            return {"logits": [][self.scenario.num_seqs()]}
        return super().replay()


@capcheck.subject("py-bad-return", fields=["key"])
class BadReturnRunner(trtllm_runner.TrtllmRunner):
    def forward(self):
        return 42


@capcheck.subject("py-interrupted", fields=["key"])
class InterruptedRunner(trtllm_runner.TrtllmRunner):
    calls = 0

    def capture(self):
        InterruptedRunner.calls += 1
        if InterruptedRunner.calls == 5:
            raise KeyboardInterrupt
        super().capture()


def test_a_python_exception_is_a_verdict_naming_type_and_line():
    with pytest.raises(capcheck.PropertyFailed) as failed:
        capcheck.check("py-index-error", ["first_replay_matches_eager"], seed=1)
    report = str(failed.value)
    assert "threw Python IndexError during replay" in report, report
    assert "test_subjects.py" in report and "in replay" in report
    assert "requests: 0 context (0 chunked), 3 generation" in report  # shrunk to 3


def test_a_return_value_capcheck_cannot_read_is_named():
    with pytest.raises(capcheck.PropertyFailed) as failed:
        capcheck.check("py-bad-return", ["first_replay_matches_eager"], seed=1, cases=5)
    assert "forward() must return a dict of name -> torch.Tensor" in str(failed.value)


def test_keyboard_interrupt_stops_the_run_and_is_raised_again():
    with pytest.raises(KeyboardInterrupt):
        capcheck.run("py-interrupted", ["capture_preserves_inputs"], seed=1, cases=100)


def test_a_bad_option_is_a_usage_error():
    with pytest.raises(capcheck.CapcheckError) as bad:
        capcheck.check("py-trtllm", options={"nope": "1"})
    assert bad.value.code == 2 and "nope" in bad.value.output


def test_an_unknown_field_fails_at_registration():
    with pytest.raises(ValueError, match="unknown scenario field 'kv'"):
        capcheck.register_subject("py-bad-fields", trtllm_runner.TrtllmRunner, fields=["kv"])
