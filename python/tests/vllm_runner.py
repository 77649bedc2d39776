"""A vLLM-style CUDA graph runner in PyTorch, registered as capcheck subject
"py-vllm" (the Python twin of examples/engines/vllm_style.cc).

Persistent input buffers sized for the largest capture size; a batch is
padded up to the nearest capture size ([1, 2, 4] + range(8, max + 1, 8));
the host-side inputs are copied into the persistent buffers before every
forward and replay; the forward writes each token's hidden state into the KV
cache through `slot_mapping`, where padded rows carry PAD_SLOT_ID, then
attends over its request's tokens of this step, read back from the cache.

--option bug=... switches in a real defect:
  seq-lens-inplace    the forward advances seq_lens in place
  pad-slot-minus-one  padded rows write the real cache at index -1, its last
                      slot (vllm #43810)
  baked-token-count   attention covers the batch's real token count, a host int
                      baked into the graph at capture
"""

import bisect

import torch

import capcheck

PAD_SLOT_ID = -1
HIDDEN = 4
VOCAB = 97
POSITIONS = 1024
WINDOW = 16


@capcheck.subject(
    "py-vllm", description="a vLLM-style runner in PyTorch: padded capture sizes, PAD_SLOT_ID",
    options=[capcheck.Option("bug", "none", values=["none", "seq-lens-inplace", "pad-slot-minus-one",
                                                    "baked-token-count"],
                             help="a real defect to switch in")],
    fields=["key", "warmups", "composition", "seq_lens", "kv_lens", "input_ids", "position_ids",
            "dummies"],
    ranges={"draft_loop": False, "batch_size_max": 16})
class VllmRunner:
    def __init__(self, config):
        self.device = config.device
        self.bug = config.options["bug"]
        self.sizes = [1, 2, 4] + list(range(8, config.tokens_max, 8))
        if self.sizes[-1] < config.tokens_max:
            self.sizes.append(config.tokens_max)
        self.tokens = self.slots = self.sizes[-1]
        T = self.tokens
        self.inputs = torch.zeros(5, T, dtype=torch.long, device=self.device)
        self.attn_slots = torch.zeros(T, WINDOW, dtype=torch.long, device=self.device)
        self.attn_mask = torch.zeros(T, WINDOW, device=self.device)
        self.kv_cache = torch.zeros(self.slots + 1, HIDDEN, device=self.device)  # last row: padding
        rows = torch.arange(VOCAB, dtype=torch.float32).unsqueeze(1)
        self.embed = torch.remainder(rows * torch.arange(1, HIDDEN + 1), 13).to(self.device)
        p = torch.arange(POSITIONS, dtype=torch.float32).unsqueeze(1)
        self.pos_embed = torch.remainder(p + torch.arange(HIDDEN), 5).to(self.device)
        self.stream = torch.cuda.Stream()
        self.graphs = {}

    def reset(self):
        self.graphs.clear()
        for t in (self.inputs, self.attn_slots, self.attn_mask, self.kv_cache):
            t.zero_()

    def prepare(self, s):
        dummies = s.num_dummy_requests * (1 + s.draft_len)
        self.real = s.num_tokens() - dummies
        self.bucket = self.sizes[bisect.bisect_left(self.sizes, s.num_tokens())]
        self.warmups = s.warmups_count
        T = self.tokens
        host = [[0] * T for _ in range(5)]
        slots = [[self.slots] * WINDOW for _ in range(T)]
        mask = [[0.0] * WINDOW for _ in range(T)]
        t = 0
        for r, seq_len in enumerate(s.seq_lens):
            first = t
            for _ in range(seq_len):
                if t >= self.real:
                    break
                host[0][t], host[1][t] = s.input_ids[t], s.position_ids[t]
                host[2][t], host[3][t], host[4][t] = self.slots - 1 - t, r, s.kv_lens[r]
                for k in range(max(first, t - WINDOW + 1), t + 1):
                    slots[t][t - k] = self.slots - 1 - k
                    mask[t][t - k] = 1.0
                t += 1
        for pad in range(self.real, self.bucket):
            host[2][pad] = PAD_SLOT_ID
        self.host = torch.tensor(host)
        self.host_slots = torch.tensor(slots)
        self.host_mask = torch.tensor(mask)
        self._copy_inputs()

    def persistent_tensors(self):
        names = ["input_ids", "positions", "slot_mapping", "request_of_token", "seq_lens"]
        tensors = {name: self.inputs[i] for i, name in enumerate(names)}
        tensors.update(attn_slots=self.attn_slots, attn_mask=self.attn_mask)
        return tensors

    def static_inputs(self):
        return self.persistent_tensors()

    def preprocess(self):  # vLLM has no in-place input update
        pass

    def postprocess(self):
        pass

    def _copy_inputs(self):
        self.inputs.copy_(self.host.to(self.device))
        self.attn_slots.copy_(self.host_slots.to(self.device))
        self.attn_mask.copy_(self.host_mask.to(self.device))

    def _model(self, n, num_actual_tokens):
        ids, pos = self.inputs[0, :n], self.inputs[1, :n]
        slot, seq = self.inputs[2, :n], self.inputs[4, :n]
        h = (self.embed.index_select(0, torch.remainder(ids, VOCAB)) +
             self.pos_embed.index_select(0, torch.remainder(pos, POSITIONS)))
        # reshape_and_cache: padded rows carry PAD_SLOT_ID and must not land in the cache.
        if self.bug == "pad-slot-minus-one":
            self.kv_cache[:self.slots].index_put_((slot,), h)  # -1: the last real slot
        else:
            self.kv_cache.index_put_((torch.where(slot >= 0, slot, torch.full_like(slot, self.slots)),), h)
        ctx = (self.kv_cache.index_select(0, self.attn_slots[:n].reshape(-1)).view(n, WINDOW, HIDDEN)
               * self.attn_mask[:n].unsqueeze(-1)).sum(1)
        if self.bug == "baked-token-count" and num_actual_tokens < n:
            ctx = torch.cat([ctx[:num_actual_tokens], torch.zeros(n - num_actual_tokens, HIDDEN,
                                                                  device=ctx.device)])
        scale = (torch.remainder(seq, 7) + 1).float().unsqueeze(1)
        logits = (h + ctx) * scale + (h + ctx).sum(1, keepdim=True)
        if self.bug == "seq-lens-inplace":
            self.inputs[4, :n].add_(1)  # "for the next step"
        return logits

    def forward(self):
        self._copy_inputs()
        return {"logits": self._model(self.real, self.real)}  # eager mode runs unpadded

    def capture(self):
        for _ in range(self.warmups):
            self._model(self.bucket, self.real)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, stream=self.stream):
            logits = self._model(self.bucket, self.real)
        self.graphs[self.bucket] = (graph, logits)

    def replay(self):
        graph, logits = self.graphs[self.bucket]
        self._copy_inputs()
        graph.replay()
        # The sampler consumes the output before the next replay overwrites it.
        return {"logits": logits[:self.real].clone()}
