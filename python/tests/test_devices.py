"""The capture emulator against real CUDA graphs (runs where CUDA graphs can):
the same seed, the same scenarios, the same verdict on every one."""

import json

import pytest

import capcheck

pytestmark = pytest.mark.skipif(not capcheck.cuda_graphs_available(),
                                reason="needs a GPU that can run CUDA graphs")

CASES = 150
RUNS = [dict(protocol=p) for p in ("reference", "pre-fix", "seed-pr", "snapshot-restore")] + [
    dict(mutant=m) for m in ("chunked-branch-asymmetry", "partial-static-copy",
                             "padded-rows-not-inert", "replay-without-prepare",
                             "stale-offsets", "cache-key-without-draft-len",
                             "capture-override-leaks", "offset-misalignment",
                             "host-value-baked")]
# pool-output-alias is left out: with PyTorch 2.11 the emulator does not hand the weakly held
# output's block to the next key's capture from Python (all 150 scenarios pass there), while CUDA
# graphs do (docs/python.md, "Known gaps"); with Debian's 1.13 the emulator kills it
# (test_trtllm.py::test_every_mutant_is_killed).


def verdicts(device, run, path):
    result = capcheck.run("py-trtllm", cases=CASES, seed=7, device=device, json=path, **run)
    with open(path) as lines:
        records = [json.loads(line) for line in lines]
    return result.code, [(r["token"], r["status"]) for r in records]


@pytest.mark.parametrize("run", RUNS, ids=lambda run: next(iter(run.values())))
def test_the_emulator_and_cuda_graphs_agree_on_every_scenario(run, tmp_path):
    code_e, emulated = verdicts("emulator", run, tmp_path / "emulator.jsonl")
    code_c, real = verdicts("cuda", run, tmp_path / "cuda.jsonl")
    assert code_e == code_c
    assert len(emulated) >= CASES
    assert emulated == real
    print(f"{run}: {len(real)} scenarios, verdicts equal")
