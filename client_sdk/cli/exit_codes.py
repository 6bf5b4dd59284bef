"""The CLI's documented exit statuses, and which error maps to which."""
from __future__ import annotations

from corral.common.errors import (
    AuthenticationFailed,
    ConfigError,
    CorralError,
    NotFound,
    PermissionDenied,
    ServiceUnavailable,
)

OK = 0
FAILURE = 1  # an API error, a failed session, anything else
USAGE = 2  # bad command line (click's own code)
AUTH_OR_CONFIG = 3  # missing/invalid client config, bad keys, no permission, server extra missing
NOT_FOUND = 4  # no such session, image, agent …
UNREACHABLE = 5  # the manager cannot be reached (or says it is unavailable); a server's database at start
INTERRUPTED = 130  # Ctrl-C

EPILOG = """\b
Exit status:
  0    success
  1    API error, or the session failed
  2    bad usage
  3    configuration or authentication problem
  4    not found
  5    manager unreachable (starting a server: its database)
  130  interrupted (Ctrl-C)
`corral run` and `corral exec` exit with the code's own exit status.

\b
Configuration: ~/.config/corral/client.toml (or $CORRAL_CONFIG), written by
`corral login` or `corral up`; CORRAL_ENDPOINT, CORRAL_ACCESS_KEY and CORRAL_SECRET_KEY
override it."""


def exit_code_for(error: BaseException) -> int:
    if isinstance(error, (ConfigError, AuthenticationFailed, PermissionDenied)):
        return AUTH_OR_CONFIG
    if isinstance(error, NotFound):
        return NOT_FOUND
    if isinstance(error, ServiceUnavailable):
        return UNREACHABLE
    if isinstance(error, CorralError):
        return FAILURE
    return FAILURE
