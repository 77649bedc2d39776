"""The Python TensorRT-LLM-style runner under every property, on the device
capcheck_device picks (the emulator here, real CUDA graphs on a GPU)."""

import json
import os
import re
import subprocess
import sys

import pytest

import capcheck
import trtllm_runner

RUNNER = trtllm_runner.__file__
SEED = 1


def scenario_line(text):
    return next(line for line in text.splitlines() if line.startswith("scenario: "))


def test_reference_passes_every_property(capcheck_device):
    result = capcheck.check("py-trtllm", device=capcheck_device, cases=1000)
    # Every property but backends_agree (one device per run): all passed.
    assert re.search(r"summary: (\d+) properties run, \1 passed, 0 violated", result.output), result.output


@pytest.mark.parametrize("prop", ["capture_preserves_inputs", "warmup_count_invariant",
                                  "first_replay_matches_eager"])
def test_seed_pr_is_found_and_shrinks_as_the_cpp_subject(prop, capcheck_device):
    with pytest.raises(capcheck.PropertyFailed) as failed:
        capcheck.check("py-trtllm", [prop], protocol="seed-pr", seed=SEED, device=capcheck_device)
    report = str(failed.value)
    assert "first difference:" in report and "reproduce: capcheck reproduce cc2:" in report, report
    # The LibTorch C++ runner, the same seed: the same minimal scenario.
    cpp = capcheck.run("trtllm-torch", [prop], protocol="seed-pr", seed=SEED, device=capcheck_device)
    assert cpp.code == 1, cpp.output
    assert scenario_line(report) == scenario_line(cpp.output)


def test_the_seed_pr_minimum(capcheck_device):
    with pytest.raises(capcheck.PropertyFailed) as failed:
        capcheck.check("py-trtllm", ["capture_preserves_inputs"], protocol="seed-pr", seed=SEED,
                       device=capcheck_device, extra=["--draft-loop", "off"])
    # One generation request with one draft token, no warmup: the smallest
    # capture that the postprocess after capture moves. (With the draft loop
    # on, seed-pr also breaks a startup capture, with one warmup: another
    # minimum, of the draft loop's kv_lens drift.)
    assert "key=(batch_size=1, draft_len=1) warmups=0 protocol=seed-pr" in str(failed.value)
    assert "static_position_ids[0, 0] expected 0, got -1" in str(failed.value)


def test_the_token_reproduces_from_python_and_from_the_cli(capcheck_device, tmp_path):
    with pytest.raises(capcheck.PropertyFailed) as failed:
        capcheck.check("py-trtllm", ["capture_preserves_inputs"], protocol="seed-pr", seed=SEED,
                       device=capcheck_device)
    token = failed.value.tokens[0]
    scenario, subject, options = capcheck.decode_token(token)
    assert subject == "py-trtllm" and scenario.protocol == "seed-pr"
    with pytest.raises(capcheck.PropertyFailed):
        capcheck.reproduce(token, device=capcheck_device)
    with pytest.raises(capcheck.CapcheckError) as other:
        capcheck.reproduce(token, subject="trtllm")
    assert other.value.code == 2 and "written for subject py-trtllm" in other.value.output
    # The capcheck executable hands a .py plugin to python3 -m capcheck.
    cli = os.environ.get("CAPCHECK_CLI")
    if not cli:
        pytest.skip("CAPCHECK_CLI (the capcheck executable) not set")
    env = dict(os.environ, CAPCHECK_PYTHON=sys.executable,
               PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    run = subprocess.run([cli, "reproduce", token, "--plugin", RUNNER, "--backend", capcheck_device],
                         env=env, capture_output=True, text=True)
    assert run.returncode == 1, run.stdout + run.stderr
    assert scenario_line(run.stdout) == scenario_line(str(failed.value))


@pytest.mark.parametrize("mutant", ["chunked-branch-asymmetry", "partial-static-copy",
                                    "padded-rows-not-inert", "replay-without-prepare",
                                    "stale-offsets", "cache-key-without-draft-len",
                                    "capture-override-leaks", "offset-misalignment",
                                    "host-value-baked", "pool-output-alias"])
def test_every_mutant_is_killed(mutant, capcheck_device):
    result = capcheck.run("py-trtllm", mutant=mutant, seed=SEED, cases=300, device=capcheck_device)
    assert result.code == 1, result.output
    cpp = capcheck.run("trtllm-torch", mutant=mutant, seed=SEED, cases=300, device=capcheck_device)
    table = lambda out: [line.split()[0] + " " + line.split()[3] for line in out.splitlines()
                         if line.split()[3:4] in (["passed"], ["VIOLATED"])]
    assert table(result.output) == table(cpp.output)  # the same properties fail


def test_regressions_are_appended_then_replayed_first(tmp_path, capcheck_device):
    regressions = tmp_path / "regressions"
    with pytest.raises(capcheck.PropertyFailed):
        capcheck.check("py-trtllm", ["capture_preserves_inputs"], protocol="seed-pr", seed=SEED,
                       regressions=regressions, device=capcheck_device)
    kept = [line for f in regressions.iterdir() for line in f.read_text().splitlines()
            if line.startswith("cc2:")]
    assert len(kept) == 1
    with pytest.raises(capcheck.PropertyFailed) as again:
        capcheck.check("py-trtllm", ["capture_preserves_inputs"], protocol="seed-pr", seed=SEED + 1,
                       regressions=regressions, device=capcheck_device)
    assert "found by regression" in str(again.value)


def test_json_lines_name_the_python_subject(tmp_path, capcheck_device):
    path = tmp_path / "cases.jsonl"
    capcheck.check("py-trtllm", ["capture_preserves_inputs"], cases=20, seed=SEED, json=path,
                   device=capcheck_device)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(lines) == 20 and {line["subject"] for line in lines} == {"py-trtllm"}


def test_a_mutant_the_runner_does_not_implement_is_refused(capcheck_device):
    # realloc-after-capture is the op-level subject's: running it here would change nothing.
    result = capcheck.run("py-trtllm", mutant="realloc-after-capture", cases=10, device=capcheck_device)
    assert result.code == capcheck.EXIT_USAGE, result.output
    assert "does not implement mutant realloc-after-capture" in result.output
