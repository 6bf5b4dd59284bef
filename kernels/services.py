"""Services a session image declares: what they are, how to start them, how to reach them.

An image names its services in the ``ai.corral.services`` label, ``NAME:PROTOCOL:PORT``
entries separated by commas (``jupyterlab:http:8888,sshd:tcp:2200``). How a service is
started comes from a built-in definition for well-known names (below) or from the
image's ``ai.corral.service.NAME`` label, a JSON object::

    {"command": ["my-app", "--port", "{port}"], "env": {"K": "V"},
     "start": "boot" | "lazy", "ready_path": "/health", "ready_timeout_s": 60}

Command words and env values may use ``{port}``, ``{base_url}`` (the path the manager's
HTTP proxy serves the service under, with a trailing slash), ``{home}`` and
``{runner_dir}``. The agent resolves the definitions and hands them to the runner as
JSON in ``CORRAL_SERVICES``; the runner starts ``boot`` services when it starts and
``lazy`` ones on first use, and listens for each on ``svc-NAME.sock`` in its directory,
where every connection becomes a byte pipe to the service's port on the container's
loopback. Nothing is ever published on the node.

Stdlib only and Python 3.9-compatible: the runner imports it inside containers.
"""
from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Mapping, Optional

SERVICES_LABEL = "ai.corral.services"
SERVICE_LABEL_PREFIX = "ai.corral.service."
SERVICES_ENV = "CORRAL_SERVICES"

SERVICE_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,31}$")
PROTOCOLS = ("tcp", "http")
START_MODES = ("boot", "lazy")
TERMINAL = "terminal"  # built into every session with a runner: the pty op, not a port
TERMINAL_PROTOCOL = "pty"

# States a service reports (the API shows them as they are).
STOPPED = "stopped"  # lazy, not started yet (or stopped on request)
STARTING = "starting"
READY = "ready"
FAILED = "failed"
STATES = (STOPPED, STARTING, READY, FAILED)

DEFAULT_READY_TIMEOUT_S = 60.0
SSHD = "sshd"
SSHD_DIR = "sshd"  # under the runner directory: the runner's sshd_config and pid file
SSH_DIR = "ssh"  # under the runner directory, written by the agent: host key, authorized_keys
SSH_HOST_KEY_NAME = "ssh_host_ed25519_key"
SSH_AUTHORIZED_KEYS_NAME = "authorized_keys"

_TEMPLATE_KEYS = ("port", "base_url", "home", "runner_dir")
_DEFINITION_KEYS = {"command", "env", "start", "ready_path", "ready_timeout_s"}

BUILTIN_DEFINITIONS: Dict[str, Dict[str, Any]] = {
    # OpenSSH, unprivileged as the session user, key auth only (the runner writes its config).
    SSHD: {
        "command": ["/usr/sbin/sshd", "-D", "-e", "-f", "{runner_dir}/" + SSHD_DIR + "/sshd_config"],
        "start": "boot",
    },
    # The manager's proxy authenticates every request, so JupyterLab's own token is off and
    # it serves under the proxy's path.
    "jupyterlab": {
        "command": [
            "jupyter", "lab", "--no-browser", "--ip=127.0.0.1", "--port={port}",
            "--ServerApp.base_url={base_url}", "--IdentityProvider.token=", "--ServerApp.password=",
            "--ServerApp.disable_check_xsrf=True", "--ServerApp.allow_remote_access=True",
            "--ServerApp.trust_xheaders=True", "--ServerApp.root_dir={home}",
            "--LabApp.extension_manager=readonly",  # sessions reach no package index at run time
        ],
        "start": "boot",
        "ready_path": "{base_url}api/status",
        "ready_timeout_s": 180,
    },
}


class ServiceDeclarationError(ValueError):
    """An image's service labels cannot be understood (the message names the label)."""


@dataclass(frozen=True)
class ServiceDefinition:
    name: str
    protocol: str
    port: int
    command: List[str]
    env: Dict[str, str] = field(default_factory=dict)
    start: str = "lazy"
    ready_path: Optional[str] = None  # http services: a GET here answering below 500 means ready
    ready_timeout_s: float = DEFAULT_READY_TIMEOUT_S

    def to_json(self) -> Dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> "ServiceDefinition":
        return cls(
            name=str(value["name"]), protocol=str(value["protocol"]), port=int(value["port"]),
            command=[str(word) for word in value["command"]],
            env={str(k): str(v) for k, v in dict(value.get("env") or {}).items()},
            start=str(value.get("start", "lazy")), ready_path=value.get("ready_path"),
            ready_timeout_s=float(value.get("ready_timeout_s", DEFAULT_READY_TIMEOUT_S)),
        )

    def rendered(self, values: Mapping[str, str]) -> "ServiceDefinition":
        """With ``{port}``, ``{base_url}``, ``{home}`` and ``{runner_dir}`` filled in."""
        filled = dict(values, port=str(self.port))
        return ServiceDefinition(
            name=self.name, protocol=self.protocol, port=self.port,
            command=[render(word, filled) for word in self.command],
            env={key: render(value, filled) for key, value in self.env.items()},
            start=self.start,
            ready_path=render(self.ready_path, filled) if self.ready_path else None,
            ready_timeout_s=self.ready_timeout_s,
        )


def http_base_path(session_id: str, name: str) -> str:
    """Where the manager's HTTP proxy serves a session's service (the app's base URL)."""
    return "/api/v1/sessions/%s/services/%s/http/" % (session_id, name)


def socket_name(name: str) -> str:
    """The runner's per-service socket, in its directory."""
    return "svc-%s.sock" % name


def render(template: str, values: Mapping[str, str]) -> str:
    try:
        return template.format_map({key: values.get(key, "") for key in _TEMPLATE_KEYS})
    except (KeyError, ValueError, IndexError) as error:
        raise ServiceDeclarationError(
            "cannot fill in %r: only {%s} may be used (%s)" % (template, "}, {".join(_TEMPLATE_KEYS), error)
        ) from None


def parse_services(labels: Mapping[str, str]) -> List[ServiceDefinition]:
    """The services an image's labels declare, in label order; [] when it declares none."""
    declared = (labels.get(SERVICES_LABEL) or "").strip()
    if not declared:
        return []
    services: List[ServiceDefinition] = []
    ports: Dict[int, str] = {}
    for entry in declared.split(","):
        name, protocol, port = _parse_entry(entry.strip())
        if any(service.name == name for service in services) or name == TERMINAL:
            raise ServiceDeclarationError("%s: service %r is declared twice" % (SERVICES_LABEL, name))
        if port in ports:
            raise ServiceDeclarationError(
                "%s: services %r and %r both use port %d" % (SERVICES_LABEL, ports[port], name, port)
            )
        ports[port] = name
        services.append(_definition(name, protocol, port, labels))
    return services


def _parse_entry(entry: str) -> "tuple[str, str, int]":
    parts = entry.split(":")
    if len(parts) != 3:
        raise ServiceDeclarationError("%s: %r is not NAME:PROTOCOL:PORT" % (SERVICES_LABEL, entry))
    name, protocol, port_text = parts
    if not SERVICE_NAME_RE.match(name):
        raise ServiceDeclarationError(
            "%s: %r is not a service name (lowercase letters, digits and '-', up to 32)" % (SERVICES_LABEL, name)
        )
    if protocol not in PROTOCOLS:
        raise ServiceDeclarationError(
            "%s: protocol %r of %r is not one of %s" % (SERVICES_LABEL, protocol, name, ", ".join(PROTOCOLS))
        )
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ServiceDeclarationError("%s: port %r of %r is not 1-65535" % (SERVICES_LABEL, port_text, name))
    return name, protocol, int(port_text)


def _definition(name: str, protocol: str, port: int, labels: Mapping[str, str]) -> ServiceDefinition:
    label = SERVICE_LABEL_PREFIX + name
    if label in labels:
        try:
            spec = json.loads(labels[label])
        except ValueError as error:
            raise ServiceDeclarationError("%s is not JSON: %s" % (label, error)) from None
        if not isinstance(spec, dict):
            raise ServiceDeclarationError("%s must be a JSON object" % label)
    elif name in BUILTIN_DEFINITIONS:
        spec = BUILTIN_DEFINITIONS[name]
    else:
        raise ServiceDeclarationError(
            "service %r has no definition: add a %s label (known without one: %s)"
            % (name, label, ", ".join(sorted(BUILTIN_DEFINITIONS)))
        )
    unknown = set(spec) - _DEFINITION_KEYS
    if unknown:
        raise ServiceDeclarationError("%s: unknown keys %s" % (label, sorted(unknown)))
    command = spec.get("command")
    if not isinstance(command, list) or not command or not all(isinstance(word, str) for word in command):
        raise ServiceDeclarationError("%s: 'command' must be a non-empty list of strings" % label)
    env = spec.get("env") or {}
    if not isinstance(env, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
        raise ServiceDeclarationError("%s: 'env' must map names to strings" % label)
    start = spec.get("start", "lazy")
    if start not in START_MODES:
        raise ServiceDeclarationError("%s: 'start' must be one of %s" % (label, ", ".join(START_MODES)))
    timeout = spec.get("ready_timeout_s", DEFAULT_READY_TIMEOUT_S)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= 3600:
        raise ServiceDeclarationError("%s: 'ready_timeout_s' must be a number of seconds up to 3600" % label)
    ready_path = spec.get("ready_path")
    if ready_path is not None and (not isinstance(ready_path, str) or not ready_path.startswith(("/", "{"))):
        raise ServiceDeclarationError("%s: 'ready_path' must be an absolute path" % label)
    definition = ServiceDefinition(
        name=name, protocol=protocol, port=port, command=list(command), env=dict(env), start=start,
        ready_path=ready_path if protocol == "http" else None, ready_timeout_s=float(timeout),
    )
    definition.rendered({})  # a template error shows now, at the agent, not inside the container
    return definition


def definitions_to_env(definitions: List[ServiceDefinition]) -> str:
    return json.dumps([definition.to_json() for definition in definitions], separators=(",", ":"))


def definitions_from_env(text: str) -> List[ServiceDefinition]:
    if not text.strip():
        return []
    return [ServiceDefinition.from_json(value) for value in json.loads(text)]
