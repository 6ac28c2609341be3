"""Workspace files: which ones may be read (scan rules shared by the server and finetune)."""
