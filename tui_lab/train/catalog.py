"""What each experiment of a file would train: model kind, exact parameter count, data,
cached token counts and the Chinchilla ratio D/N (``tui-lab list``; the app reads it
through ``tui-lab list --json``)."""

from __future__ import annotations

from typing import Any


def experiment_rows(cfg) -> list[dict[str, Any]]:
    """One row per experiment of ``cfg`` (a loaded experiments file), in file order.

    Keys: name, kind, num_params (exact, :func:`~tui_lab.models.counting.count_parameters_of_config`),
    dataset (``path`` or ``dataset/config``), tokenizer, train_tokens and val_tokens (the
    train / validation split's token ids, with the experiment's ``data.join``: from the token
    cache, or tokenized now when the text and tokenizer are local; None otherwise, see
    :func:`~tui_lab.data.counts.split_token_counts`), chinchilla_ratio (train_tokens /
    num_params, rounded to 3 places; the Chinchilla rule of thumb is 20), description.
    """
    from ..data.counts import split_token_counts
    from ..models.counting import count_parameters_of_config

    rows = []
    for name, exp in cfg.experiments.items():
        n_params = count_parameters_of_config(exp.model)
        d = exp.data
        dataset = d.path or (f"{d.dataset}/{d.config}" if d.config else d.dataset)
        counts = split_token_counts(d)
        train_tokens = counts["train_tokens"]
        rows.append({
            "name": name, "kind": exp.model.kind, "num_params": n_params, "dataset": dataset,
            "tokenizer": d.tokenizer, "train_tokens": train_tokens, "val_tokens": counts["val_tokens"],
            "chinchilla_ratio": round(train_tokens / n_params, 3) if train_tokens else None,
            "description": exp.description,
        })
    return rows
