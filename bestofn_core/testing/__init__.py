"""Testing helpers for bestofn-core.

Submodules are imported explicitly (for example ``bestofn_core.testing.openai_server``); nothing heavy is
imported from this package's ``__init__``.
"""
