"""What runs inside session containers, and the local image builder.

- ``runner.py``: the stdlib-only in-container runner (Unix-socket protocol).
- ``contract.py``: mount points, commands, env names and socket directory, shared by the
  agent and the runner (the host-side protocol client is ``corral.agent.runner_client``).
- ``builder.py``: ``build_image`` (mmdebstrap | docker import) from ``recipes/*.toml``.
"""
