"""Files mounted into GPU kernels: `sitecustomize.py` applies fractional GPU limits (see its docstring)."""
