"""The Textual app (issue: the terminal app)."""
