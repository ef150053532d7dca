"""Stop rules over the generated token ids (``Generator.stream(stop_rule=...)``).

A stop rule takes the ids generated so far and returns a reason (a short text) when
generation should end, else None. Token-level only: how a message becomes a prompt and
how a reply is read from the text are the chat presets' job (:mod:`tui_lab.chat.presets`).
"""

from __future__ import annotations


def exp7_stop_rule(ids: list[int]) -> str | None:
    """exp7's extra stops (``exp7_inference.py``, see FIELD_NOTES): one token three times
    in a row, or the last 3 tokens repeating the 3 before them."""
    if len(ids) >= 3 and ids[-1] == ids[-2] == ids[-3]:
        return "same token 3 times"
    if len(ids) >= 6 and ids[-3:] == ids[-6:-3]:
        return "repeated 3-token pattern"
    return None
