"""What runs inside session containers, and the local image builder.

- ``runner.py``: the stdlib-only in-container runner (Unix-socket protocol).
- ``contract.py``: mount points, commands and socket directory the agent uses.
- ``runner_client.py``: an asyncio client for the runner's protocol.
- ``builder.py``: ``build_image`` (mmdebstrap | docker import) from ``recipes/*.toml``.
"""
