"""Chat: one chat turn for the CLI and the app (session), presets, transcripts."""
