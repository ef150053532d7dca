"""The app's screens: main (experiments + live run), chat, results."""
