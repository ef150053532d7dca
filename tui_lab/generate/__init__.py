"""Text generation from a trained model (placeholder until the chat engine lands)."""

from __future__ import annotations

from typing import Any

import torch


@torch.no_grad()
def generate_text(model: torch.nn.Module, tokenizer: Any, prompt: str, *, max_new_tokens: int = 40,
                  temperature: float = 0.8, top_k: int = 50, seed: int = 0,
                  device: torch.device | str = "cpu") -> str:
    """Continue ``prompt`` by top-k sampling (Fan et al. 2018); returns the new text only."""
    was_training = model.training
    model.eval()
    g = torch.Generator(device="cpu").manual_seed(seed)
    ids = tokenizer.encode(prompt) or [0]
    max_len = model.config["max_seq_len"]
    out: list[int] = []
    for _ in range(max_new_tokens):
        ctx = torch.tensor([(ids + out)[-max_len:]], dtype=torch.long, device=device)
        logits = model(ctx)[0, -1].float().cpu()
        if temperature <= 0:
            nxt = int(logits.argmax())
        else:
            logits = logits / temperature
            if top_k:
                kth = torch.topk(logits, min(top_k, logits.numel())).values[-1]
                logits[logits < kth] = -float("inf")
            nxt = int(torch.multinomial(torch.softmax(logits, -1), 1, generator=g))
        out.append(nxt)
    model.train(was_training)
    return tokenizer.decode(out)
