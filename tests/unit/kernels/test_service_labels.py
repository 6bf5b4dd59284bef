"""Reading the services an image declares (``ai.corral.services`` and ``ai.corral.service.NAME``)."""
from __future__ import annotations

import json

import pytest

from corral.kernels.services import (
    ServiceDeclarationError, definitions_from_env, definitions_to_env, http_base_path, parse_services,
)


def test_built_in_definitions_and_order() -> None:
    found = parse_services({"ai.corral.services": "jupyterlab:http:8888, sshd:tcp:2200"})
    assert [(s.name, s.protocol, s.port, s.start) for s in found] == [
        ("jupyterlab", "http", 8888, "boot"), ("sshd", "tcp", 2200, "boot"),
    ]
    rendered = found[0].rendered({"base_url": http_base_path("sid", "jupyterlab"), "home": "/home/work"})
    assert "--port=8888" in rendered.command
    assert "--ServerApp.base_url=/api/v1/sessions/sid/services/jupyterlab/http/" in rendered.command
    assert rendered.ready_path == "/api/v1/sessions/sid/services/jupyterlab/http/api/status"
    assert definitions_from_env(definitions_to_env(found)) == found


def test_a_custom_definition_label() -> None:
    labels = {
        "ai.corral.services": "board:http:6006",
        "ai.corral.service.board": json.dumps({"command": ["tensorboard", "--port", "{port}"], "start": "lazy"}),
    }
    (board,) = parse_services(labels)
    assert board.rendered({}).command == ["tensorboard", "--port", "6006"] and board.start == "lazy"


def test_no_label_means_no_services() -> None:
    assert parse_services({}) == [] and parse_services({"ai.corral.services": " "}) == []


@pytest.mark.parametrize("labels, message", [
    ({"ai.corral.services": "sshd:tcp"}, "not NAME:PROTOCOL:PORT"),
    ({"ai.corral.services": "Bad_Name:tcp:1"}, "not a service name"),
    ({"ai.corral.services": "sshd:udp:22"}, "protocol 'udp'"),
    ({"ai.corral.services": "sshd:tcp:70000"}, "not 1-65535"),
    ({"ai.corral.services": "sshd:tcp:22,sshd:tcp:23"}, "declared twice"),
    ({"ai.corral.services": "terminal:tcp:22"}, "declared twice"),
    ({"ai.corral.services": "sshd:tcp:22,jupyterlab:http:22"}, "both use port 22"),
    ({"ai.corral.services": "mine:tcp:22"}, "no definition: add a ai.corral.service.mine label"),
    ({"ai.corral.services": "mine:tcp:22", "ai.corral.service.mine": "{"}, "is not JSON"),
    ({"ai.corral.services": "mine:tcp:22", "ai.corral.service.mine": '{"command": []}'}, "non-empty list"),
    ({"ai.corral.services": "mine:tcp:22", "ai.corral.service.mine": '{"command": ["x"], "start": "now"}'},
     "'start' must be"),
    ({"ai.corral.services": "mine:tcp:22", "ai.corral.service.mine": '{"command": ["x"], "cmd": 1}'},
     "unknown keys"),
    ({"ai.corral.services": "mine:tcp:22", "ai.corral.service.mine": '{"command": ["{nope}"]}'},
     "only {port}"),
])
def test_bad_labels_are_named(labels: dict[str, str], message: str) -> None:
    with pytest.raises(ServiceDeclarationError, match=message.replace("{", r"\{").replace("(", r"\(")):
        parse_services(labels)
