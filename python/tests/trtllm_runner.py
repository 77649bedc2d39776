"""A TensorRT-LLM-style CUDA graph runner in PyTorch, registered as capcheck
subject "py-trtllm".

It is written the way TensorRT-LLM's PyTorch model engine writes its capture
path, with plain torch.cuda calls (on a CPU, capcheck runs them on the capture
emulator):
  - `_preprocess_inputs` / `_postprocess_inputs` update the inputs in place:
    position_ids[:, ctx:] += previous_pos_id_offsets, and the kv branch,
    kv_lens[a:b] += previous_kv_lens_offsets over the chunked context requests
    when there are any, else over the generation requests;
  - one-model speculative decoding's draft loop moves kv_lens inside the
    forward;
  - the capture loop is the seed's: `for _ in range(warmups): forward_fn(inputs);
    postprocess_fn(inputs)`, then `with torch.cuda.graph(graph, pool=pool):
    output = forward_fn(inputs)`, one shared pool for every key;
  - a replay copies the iteration's inputs into the static inputs and replays.
The scenario's protocol picks the bracketing (reference, pre-fix, seed-pr,
snapshot-restore) and its mutant a defect, as in capcheck's built-in subjects;
the model is the built-in LibTorch runner's (small integer weights in
float32), so the verdicts are the C++ subjects' verdicts.
"""

import torch

import capcheck

EMBEDDING_ROWS = 1024


# Its kv_lens is never reallocated: the realloc-after-capture mutant is the op-level subject's.
@capcheck.subject("py-trtllm", description="TensorRT-LLM's capture path in PyTorch (Python)",
                  unimplemented_mutants=["realloc-after-capture"])
class TrtllmRunner:
    def __init__(self, config):
        self.device = config.device
        T, S = config.tokens_max, config.seqs_max
        i32 = dict(dtype=torch.int32, device=self.device)
        # Every int32 tensor is a view of one arena, so reset() is one fill.
        self.arena = torch.zeros(6 * T + 5 * S, **i32)
        views = iter(torch.split(self.arena, [T, T, T, T, S, S, T, T, S, S, S]))
        self.input_ids = next(views)
        self.position_ids = next(views).view(1, T)
        self.static_input_ids = next(views)
        self.static_position_ids = next(views).view(1, T)
        self.seq_lens = next(views)
        self.kv_lens = next(views)
        self.seq_ids = next(views)
        self.pos_offsets = next(views)
        self.kv_offsets = next(views)
        self.rejected = next(views)
        self.kv_snapshot = next(views)
        rows = torch.arange(EMBEDDING_ROWS, dtype=torch.float32)
        self.embedding = torch.stack([rows, torch.remainder(rows * 37, 101),
                                      torch.remainder(rows * 11, 13) - 6,
                                      torch.remainder(rows, 7)], 1).to(self.device)
        features = 4 + 1 + 1 + 1
        self.projection = torch.cat([torch.eye(features), torch.ones(features, 1)], 1).to(self.device)
        self.stream = torch.cuda.Stream()
        self.pool = torch.cuda.graph_pool_handle()  # one pool for every key, as CUDAGraphRunner
        self.graphs = {}
        if self.device.type == "cuda":
            with torch.cuda.stream(self.stream):
                self.projection.t().matmul(self.projection)  # cuBLAS's handle, before any capture
            # A pool whose every graph is gone cannot be captured into again.
            self.pool_owner = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.pool_owner, pool=self.pool, stream=self.stream):
                self.kv_snapshot + 0
        self.forward_reads_static = False
        self.scenario = None

    def reset(self):
        self.forward_reads_static = False
        self.graphs.clear()
        self.arena.zero_()
        self.scenario = None

    def prepare(self, s):
        self.scenario = s
        self.num_tokens = s.num_tokens()
        self.num_ctx_tokens = s.num_ctx_tokens()
        # attn_metadata.prepare() rewrites kv_lens from host every iteration;
        # the mutant skips it when the key's graph already exists.
        skip_kv = s.mutant == "replay-without-prepare" and s.key_index() in self.graphs
        fields = [(self.input_ids, s.input_ids), (self.seq_lens, s.seq_lens),
                  (self.seq_ids, s.token_sequences()), (self.pos_offsets, s.previous_pos_id_offsets),
                  (self.kv_offsets, s.previous_kv_lens_offsets),
                  (self.rejected, s.rejected_draft_tokens()), (self.position_ids[0], s.position_ids)]
        if not skip_kv:
            fields.append((self.kv_lens, s.kv_lens))
        # The overlap scheduler's offsets are new every iteration; the mutant
        # keeps those of the capture once the key's graph exists.
        if s.mutant == "stale-offsets" and s.key_index() in self.graphs:
            fields = [f for f in fields if f[0] is not self.pos_offsets and f[0] is not self.kv_offsets]
        staged = torch.tensor([v for _, values in fields for v in values], dtype=torch.int32).to(self.device)
        at = 0
        for tensor, values in fields:
            n = len(values)
            if n:
                tensor[:n].copy_(staged[at:at + n])
            at += n

    def persistent_tensors(self):
        return {"input_ids": self.input_ids, "position_ids": self.position_ids,
                "static_input_ids": self.static_input_ids,
                "static_position_ids": self.static_position_ids, "seq_lens_cuda": self.seq_lens,
                "kv_lens_cuda": self.kv_lens, "seq_ids": self.seq_ids,
                "previous_pos_id_offsets": self.pos_offsets,
                "previous_kv_lens_offsets": self.kv_offsets,
                "num_rejected_draft_tokens": self.rejected}

    def static_inputs(self):
        return {"static_input_ids": self.static_input_ids,
                "static_position_ids": self.static_position_ids}

    # _preprocess_inputs (sign +1) and _postprocess_inputs (sign -1).
    def _update_inputs(self, position_ids, sign):
        s = self.scenario
        ctx, n = self.num_ctx_tokens, self.num_tokens

        def apply(dst, src):
            if dst.numel():
                dst.add_(src) if sign > 0 else dst.sub_(src)

        if s.mutant == "offset-misalignment" and s.num_dummy_requests > 0:
            # The bug: the previous tensor's tokens taken as if the dummies came first.
            shift = s.num_dummy_requests * (1 + s.draft_len)
            apply(position_ids[:, ctx:n - shift], self.pos_offsets[shift:n - ctx])
            apply(position_ids[:, n - shift:n], self.pos_offsets[:shift])
        else:
            apply(position_ids[:, ctx:n], self.pos_offsets[:n - ctx])
        chunked = s.num_chunked_ctx_requests > 0 and not (
            sign < 0 and s.mutant == "chunked-branch-asymmetry")
        nc, ng = s.num_contexts, s.num_generations
        if chunked:
            m = s.num_chunked_ctx_requests
            apply(self.kv_lens[nc - m:nc], self.kv_offsets[:m])
        elif s.mutant == "padded-rows-not-inert" and s.num_dummy_requests > 0:
            shift = s.num_dummy_requests  # the bug: rows taken as if the dummies came first
            apply(self.kv_lens[nc:nc + ng - shift], self.kv_offsets[shift:ng])
            apply(self.kv_lens[nc + ng - shift:nc + ng], self.kv_offsets[:shift])
        else:
            # The mutant sizes the update by the batch's real requests (baked at capture).
            count = ng - s.num_dummy_requests if s.mutant == "host-value-baked" else min(
                ng, s.kv_offsets_count())
            apply(self.kv_lens[nc:nc + count], self.kv_offsets[:count])

    def preprocess(self):
        self._update_inputs(self.position_ids, +1)

    def postprocess(self):
        self._update_inputs(self.position_ids, -1)

    def _model(self, input_ids, position_ids):
        n = self.num_tokens
        ids = input_ids[:n]
        embedded = self.embedding.index_select(0, ids.remainder(EMBEDDING_ROWS))
        high = ids.div(EMBEDDING_ROWS, rounding_mode="floor").float().unsqueeze(1)
        positions = position_ids[:, :n].reshape(-1, n).t().float()
        kv = self.kv_lens.index_select(0, self.seq_ids[:n]).float().unsqueeze(1)
        return torch.cat([embedded, high, positions, kv], 1).matmul(self.projection)

    # The draft loop: step 0 moves generation rows by -(rejected) and context
    # rows by +1, every later step all rows by +1; sign -1 undoes it.
    def _draft_loop(self, sign):
        s = self.scenario
        if not s.draft_loop:
            return
        nc, bs = s.num_contexts, s.num_seqs()

        def step0():
            gen = self.kv_lens[nc:bs]
            if gen.numel():
                gen.sub_(self.rejected[:bs - nc]) if sign > 0 else gen.add_(self.rejected[:bs - nc])
            if nc:
                self.kv_lens[:nc].add_(sign)

        later = range(1, s.draft_len)
        if sign > 0:
            step0()
            for _ in later:
                self.kv_lens[:bs].add_(sign)
        else:
            for _ in later:
                self.kv_lens[:bs].add_(sign)
            step0()

    def forward(self):
        if self.forward_reads_static:  # the mutant: the capture's switch is still on
            return {"logits": self._forward_static()}
        self._update_inputs(self.position_ids, +1)
        logits = self._model(self.input_ids, self.position_ids)
        self._draft_loop(+1)
        return {"logits": logits}

    def _forward_static(self):
        self._update_inputs(self.static_position_ids, +1)
        logits = self._model(self.static_input_ids, self.static_position_ids)
        self._draft_loop(+1)
        return logits

    @staticmethod
    def _cache_index(s):
        # The graph cache's key; the mutant keys on the batch size alone.
        return s.num_seqs() * 16 if s.mutant == "cache-key-without-draft-len" else s.key_index()

    def capture(self):
        s = self.scenario
        if s.mutant == "cache-key-without-draft-len" and self._cache_index(s) in self.graphs:
            return  # the mutant's cache says this key is captured already
        protocol = s.protocol
        if protocol == "snapshot-restore":
            self.kv_snapshot.copy_(self.kv_lens)
        for _ in range(s.warmups_count):
            self._forward_static()
            if protocol == "reference":
                self._draft_loop(-1)
                self._update_inputs(self.static_position_ids, -1)
            elif protocol != "pre-fix":
                self._update_inputs(self.static_position_ids, -1)
        self.graphs.pop(self._cache_index(s), None)
        graph = torch.cuda.CUDAGraph()
        # A capture-only switch (the forward reads the static inputs while the
        # graph is recorded); the mutant never switches it back.
        self.forward_reads_static = True
        try:
            with torch.cuda.graph(graph, pool=self.pool, stream=self.stream):
                output = self._forward_static()
        finally:
            self.forward_reads_static = s.mutant == "capture-override-leaks"
        if s.mutant == "pool-output-alias":
            # Only a weak reference to the output is kept: the pool sees its
            # block as free and hands it to the next key's capture.
            output = capcheck.weak_ref_tensor(output)
        self.graphs[self._cache_index(s)] = (graph, output)
        if protocol in ("seed-pr", "snapshot-restore"):
            self._update_inputs(self.static_position_ids, -1)
        if protocol == "snapshot-restore":
            self.kv_lens.copy_(self.kv_snapshot)

    def replay(self):
        s = self.scenario
        graph, output = self.graphs[self._cache_index(s)]
        copied = s.replay_copied_tokens()
        self.static_input_ids[:copied].copy_(self.input_ids[:copied])
        self.static_position_ids[:, :copied].copy_(self.position_ids[:, :copied])
        graph.replay()
        return {"logits": output[:min(self.num_tokens, output.shape[0])]}
