"""The lifecycle core: pipeline, transition decisions, use cases, storage and the outbox.

Imports no chat SDK, no scheduler and nothing from `adapters/` or `bot/` (tests/unit/test_layering.py).
"""
