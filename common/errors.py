"""Errors shared by all components, and their RFC 7807 problem+json form.

Each error class has a stable ``type`` URI suffix and an HTTP status, so a
server can turn any of them into ``application/problem+json`` and a client can
turn the document back into the same class.
"""
from __future__ import annotations

from typing import Any, ClassVar

PROBLEM_BASE = "https://corral.dev/problems/"
PROBLEM_CONTENT_TYPE = "application/problem+json"


class CorralError(Exception):
    """Base class; ``type_suffix`` and ``status`` define its problem document."""

    type_suffix: ClassVar[str] = "internal-error"
    status: ClassVar[int] = 500
    title: ClassVar[str] = "Internal error"

    def __init__(self, detail: str = "", **extra: Any) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.extra = extra

    @property
    def type_uri(self) -> str:
        return PROBLEM_BASE + self.type_suffix

    def to_problem(self, instance: str | None = None) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "type": self.type_uri,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if instance:
            doc["instance"] = instance
        doc.update(self.extra)
        return doc


class ConfigError(CorralError):
    type_suffix = "config-error"
    title = "Invalid configuration"


class InvalidRequest(CorralError):
    type_suffix = "invalid-request"
    status = 400
    title = "Invalid request"


class AuthenticationFailed(CorralError):
    type_suffix = "authentication-failed"
    status = 401
    title = "Authentication failed"


class PermissionDenied(CorralError):
    type_suffix = "permission-denied"
    status = 403
    title = "Permission denied"


class NotFound(CorralError):
    type_suffix = "not-found"
    status = 404
    title = "Not found"


class Conflict(CorralError):
    type_suffix = "conflict"
    status = 409
    title = "Conflict"


class UnsatisfiableRequest(CorralError):
    """No node of the cluster could ever satisfy the requested resources."""

    type_suffix = "unsatisfiable-resources"
    status = 422
    title = "Requested resources can never be satisfied"


class UnprocessableRequest(CorralError):
    """Well-formed, but it names something that does not exist (a policy, a group, a project) or asks for
    what its target does not allow (a session type a resource group does not take)."""

    type_suffix = "unprocessable-request"
    status = 422
    title = "Request cannot be processed"


class PolicyLimitReached(Conflict):
    """A resource policy's limit on queued sessions is reached: retry once some of them start or end."""

    type_suffix = "policy-limit-reached"
    title = "Resource policy limit reached"


class QuotaExceeded(CorralError):
    type_suffix = "quota-exceeded"
    status = 413
    title = "Quota exceeded"


class KernelDestroyed(CorralError):
    """An agent refuses to create a kernel it already destroyed (or saw end): the create came too late."""

    type_suffix = "kernel-destroyed"
    status = 410
    title = "Kernel already destroyed"


class ServiceUnavailable(CorralError):
    type_suffix = "service-unavailable"
    status = 503
    title = "Service unavailable"


class BackendError(CorralError):
    """A dependency (Docker, database, another service) failed."""

    type_suffix = "backend-error"
    status = 502
    title = "Backend error"


class SessionServiceFailed(BackendError):
    """A session's service (JupyterLab, sshd, ...) could not start; ``log_tail`` says why."""

    type_suffix = "session-service-failed"
    title = "Session service failed"

    @classmethod
    def not_available(cls, name: str, info: dict[str, Any]) -> "SessionServiceFailed":
        """From the runner's report of a service that is not ready (its state, error and log tail)."""
        state = info.get("state")
        why = info.get("error") or (f"it is still {state}" if state else "it is not running")
        return cls(f"service {name!r} is not available: {why}", service=name, state=state,
                   log_tail=info.get("log_tail") or "")


class RateLimited(CorralError):
    """Too many failed attempts; ``Retry-After`` says when to try again."""

    type_suffix = "rate-limited"
    status = 429
    title = "Too many requests"

    def __init__(self, detail: str, retry_after_s: int) -> None:
        super().__init__(detail, retry_after_s=retry_after_s)
        self.headers = {"Retry-After": str(retry_after_s)}  # the problem middleware sends these


_BY_SUFFIX: dict[str, type[CorralError]] = {}


def _register_all() -> None:
    stack: list[type[CorralError]] = [CorralError]
    while stack:
        cls = stack.pop()
        _BY_SUFFIX[cls.type_suffix] = cls
        stack.extend(cls.__subclasses__())


def error_from_problem(doc: dict[str, Any], status: int) -> CorralError:
    """Rebuild the matching error class from a problem document (client side)."""
    if not _BY_SUFFIX:
        _register_all()
    type_uri = str(doc.get("type", ""))
    suffix = type_uri[len(PROBLEM_BASE):] if type_uri.startswith(PROBLEM_BASE) else ""
    cls = _BY_SUFFIX.get(suffix, CorralError)
    extra = {k: v for k, v in doc.items() if k not in {"type", "title", "status", "detail", "instance"}}
    err = cls(str(doc.get("detail") or doc.get("title") or f"HTTP {status}"), **extra)
    err.http_status = status  # type: ignore[attr-defined]
    return err
