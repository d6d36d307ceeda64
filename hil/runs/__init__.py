"""Run history: each recorded pytest session with its tests, boot times and artifacts, in the store."""
