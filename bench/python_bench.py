"""Cases per second of capture_preserves_inputs + first_replay_matches_eager on
the Python TensorRT-LLM-style runner (python/tests/trtllm_runner.py), side by
side in one process:

  capcheck    capcheck.run() from Python: generation, both properties, the
              reports (on a CPU the capture emulator, on a GPU real graphs);
  bare        a plain Python loop over the same runner and the same checks
              (clone the inputs, warm up, capture, compare; replay, eager
              forward, compare), scenarios drawn with `random`: the floor;
  hypothesis  the same checks as two Hypothesis tests (@given over the same
              scenario space, no database, no deadline).

Without a GPU, `bare` and `hypothesis` can only run the eager half: their
torch.cuda graph calls are stand-ins (the captured forward runs eagerly and
its writes are undone, as a capture leaves memory; a replay is an eager
forward on the static inputs), the least work that checks the same values. With a GPU all three use
torch.cuda.graph.

  PYTHONPATH=build/dev/python /usr/bin/python3 bench/python_bench.py [--cases N]

A case is one property evaluated on one scenario: a run of N cases for each
of the two properties counts 2N.
"""

import argparse
import contextlib
import os
import random
import sys
import time
import types

import torch

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "python", "tests"))

import capcheck  # noqa: E402
import trtllm_runner  # noqa: E402

PROPERTIES = ["capture_preserves_inputs", "first_replay_matches_eager"]
TOKENS_MAX, SEQS_MAX = 512, 64


class Scenario:
    """The scenario fields the runner reads, as plain Python values."""

    def __init__(self, batch, draft_len, warmups, contexts, chunked, ctx_lens, kv_extra,
                 pos_offsets, kv_offsets, accepted, ids):
        self.protocol, self.mutant = "reference", "none"
        self.draft_len, self.warmups_count = draft_len, warmups
        self.draft_loop = draft_len > 0
        self.num_contexts, self.num_chunked_ctx_requests = contexts, chunked
        self.num_generations, self.num_dummy_requests = batch - contexts, 0
        self.seq_lens = ctx_lens + [1 + draft_len] * self.num_generations
        self.kv_lens = [n + e for n, e in zip(self.seq_lens, kv_extra)]
        gen_tokens = self.num_generations * (1 + draft_len)
        self.previous_pos_id_offsets = pos_offsets[:gen_tokens]
        self.previous_kv_lens_offsets = kv_offsets[:self.kv_offsets_count()]
        self.num_accepted_tokens = accepted[:self.num_generations]
        self.input_ids = ids[:self.num_tokens()]
        self.position_ids = [kv - n + i for n, kv in zip(self.seq_lens, self.kv_lens)
                             for i in range(n)]

    def num_seqs(self):
        return self.num_contexts + self.num_generations

    def num_ctx_tokens(self):
        return sum(self.seq_lens[:self.num_contexts])

    def num_tokens(self):
        return sum(self.seq_lens)

    def kv_offsets_count(self):
        return self.num_chunked_ctx_requests or self.num_generations

    def key_index(self):
        return self.num_seqs() * 16 + self.draft_len

    def replay_copied_tokens(self):
        return self.num_tokens()

    def token_sequences(self):
        return [r for r, n in enumerate(self.seq_lens) for _ in range(n)]

    def rejected_draft_tokens(self):
        return [self.draft_len - a for a in self.num_accepted_tokens]


def draw_scenario(pick):
    """pick(lo, hi) -> int: one scenario of the space both loops share."""
    batch = pick(1, 16)
    draft_len = pick(0, 3)
    contexts = pick(0, min(2, batch - 1))
    chunked = pick(0, contexts)
    ctx_lens = [pick(1, 8) for _ in range(contexts)]
    kv_extra = [pick(0, 64) for _ in range(batch)]
    return Scenario(batch, draft_len, pick(0, 3), contexts, chunked, ctx_lens, kv_extra,
                    [pick(-4, 4) for _ in range(batch * 4)], [pick(-4, 4) for _ in range(batch)],
                    [pick(0, draft_len) for _ in range(batch)],
                    [pick(0, 4095) for _ in range(batch * 8)])


class _EagerGraph:
    def replay(self):
        pass


@contextlib.contextmanager
def _no_effect(arena):
    """A capture's body runs no kernel: its writes to the runner's tensors are undone."""
    saved = arena.clone()
    yield
    arena.copy_(saved)


@contextlib.contextmanager
def eager_stubs(holder):
    """torch.cuda's graph and stream calls as eager stand-ins (no GPU, no capcheck)."""
    names = {"CUDAGraph": _EagerGraph, "graph": lambda *a, **k: _no_effect(holder[0].arena),
             "graph_pool_handle": lambda: None, "Stream": lambda *a, **k: None,
             "stream": lambda *a, **k: contextlib.nullcontext()}
    saved = {name: getattr(torch.cuda, name) for name in names}
    for name, value in names.items():
        setattr(torch.cuda, name, value)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(torch.cuda, name, value)


def make_runner(device):
    config = types.SimpleNamespace(device=torch.device(device), tokens_max=TOKENS_MAX,
                                   seqs_max=SEQS_MAX, options={})
    return trtllm_runner.TrtllmRunner(config)


def check_capture_preserves_inputs(runner, s):
    runner.reset()
    runner.prepare(s)
    before = {k: v.clone() for k, v in runner.persistent_tensors().items()}
    runner.capture()
    for name, tensor in runner.persistent_tensors().items():
        assert torch.equal(tensor, before[name]), name


def check_first_replay_matches_eager(runner, s, graphs):
    runner.reset()
    runner.prepare(s)
    runner.capture()
    runner.prepare(s)
    if graphs:
        got = runner.replay()["logits"].clone()
    else:  # eager half: the forward the graph would replay
        runner.static_input_ids.copy_(runner.input_ids)
        runner.static_position_ids.copy_(runner.position_ids)
        got = runner._forward_static()
    runner.reset()
    runner.prepare(s)
    want = runner.forward()["logits"]
    assert torch.equal(got, want)


def sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def bench_capcheck(device, cases, seed):
    start = time.perf_counter()
    result = capcheck.run("py-trtllm", PROPERTIES, cases=cases, seed=seed,
                          device="cuda" if device == "cuda" else "emulator")
    elapsed = time.perf_counter() - start
    assert result.code == 0, result.output
    return 2 * cases / elapsed


def bench_bare(runner, device, cases, seed, graphs):
    rng = random.Random(seed)
    scenarios = [draw_scenario(rng.randint) for _ in range(cases)]
    start = time.perf_counter()
    for s in scenarios:
        check_capture_preserves_inputs(runner, s)
        check_first_replay_matches_eager(runner, s, graphs)
    sync(device)
    return 2 * cases / (time.perf_counter() - start)


def bench_hypothesis(runner, device, cases, graphs):
    from hypothesis import given, settings, strategies as st, HealthCheck

    @st.composite
    def scenarios(draw):
        return draw_scenario(lambda lo, hi: draw(st.integers(lo, hi)))

    settings_ = settings(max_examples=cases, deadline=None, database=None, derandomize=True,
                         suppress_health_check=list(HealthCheck))

    @settings_
    @given(scenarios())
    def capture_preserves_inputs(s):
        check_capture_preserves_inputs(runner, s)

    @settings_
    @given(scenarios())
    def first_replay_matches_eager(s):
        check_first_replay_matches_eager(runner, s, graphs)

    start = time.perf_counter()
    capture_preserves_inputs()
    first_replay_matches_eager()
    sync(device)
    return 2 * cases / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=1000, help="cases per property")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    args = parser.parse_args()
    device = args.device
    if device == "auto":
        device = "cuda" if capcheck.cuda_graphs_available() else "cpu"
    graphs = device == "cuda"
    where = torch.cuda.get_device_name() if graphs else "CPU, capcheck on the capture emulator"
    print(f"python_bench: {args.cases} cases per property, {where}, torch {torch.__version__}")
    rates = {"capcheck": bench_capcheck(device, args.cases, args.seed)}
    holder = []
    with contextlib.nullcontext() if graphs else eager_stubs(holder):
        runner = make_runner(device)
        holder.append(runner)
        rates["bare"] = bench_bare(runner, device, args.cases, args.seed, graphs)
        rates["hypothesis"] = bench_hypothesis(runner, device, args.cases, graphs)
    half = "" if graphs else " (eager half only)"
    for name, rate in rates.items():
        extra = "" if name == "capcheck" else half
        print(f"  {name:<11} {rate:9.0f} cases/s{extra}")
    print(f"  capcheck / bare       {rates['capcheck'] / rates['bare']:.2f}x")
    print(f"  capcheck / hypothesis {rates['capcheck'] / rates['hypothesis']:.2f}x")


if __name__ == "__main__":
    main()
