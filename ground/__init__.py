"""The ground every layer stands on: settings, metrics, logs, start-up errors, stopping, heap.

It imports nothing of ours, so any package may import it and it may be read first.
"""
