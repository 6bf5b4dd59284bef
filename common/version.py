"""The running Corral version (from the installed distribution)."""
from importlib.metadata import PackageNotFoundError, version

try:
    VERSION = version("corral")
except PackageNotFoundError:  # running from a source tree without install
    VERSION = "0.0.0+source"
