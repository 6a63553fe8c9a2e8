"""Orchestration: the functions that combine content, render, feeds, related, store and deliver.

``cli``, ``schedule``, ``web`` and ``worker`` call these, so each pipeline
(build, send, digest) is written once.
"""
