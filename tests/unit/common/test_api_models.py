"""The shared API models: exact JSON round-trips, optional keys, raw documents, and the document built from them."""
from __future__ import annotations

from datetime import datetime, timezone

from corral.common import api_models as api

AT = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=timezone.utc)


def test_times_are_written_as_isoformat_and_read_back_unchanged() -> None:
    change = api.StatusChange(session_id="s", status="RUNNING", reason="started", at=AT)
    doc = change.to_json()
    assert doc == {"status": "RUNNING", "reason": "started", "at": AT.isoformat(), "session_id": "s"}
    assert api.StatusChange.from_json(doc).to_json() == doc
    assert api.StatusChange.from_json({**doc, "at": "2024-05-06T07:08:09Z"}).to_json()["at"] == "2024-05-06T07:08:09+00:00"


def test_optional_keys_are_sent_only_when_set() -> None:
    listed = api.Session(id="s1", name="a")
    assert "status_history" not in listed.to_json()
    detailed = api.Session(id="s1", name="a", status_history=[])
    assert detailed.to_json()["status_history"] == []
    vfolder = api.Vfolder(id="v").model_copy(update={"usage": None, "usage_error": "proxy down"})
    assert {k: vfolder.to_json()[k] for k in ("usage", "usage_error")} == {"usage": None, "usage_error": "proxy down"}
    assert "over_quota" not in vfolder.to_json() and "shared_with" not in vfolder.to_json()


def test_parsing_is_lenient_and_keeps_the_raw_documents() -> None:
    doc = {"id": "s1", "name": "a", "future_field": 1, "kernels": [{"id": "k1", "also_new": True}]}
    session = api.Session.from_json(doc)
    assert session.raw == doc and session.kernels[0].raw == doc["kernels"][0]
    assert session.status_history == [] and session.created_at is None and session.short_id == "s1"
    assert session == api.Session(id="s1", name="a", kernels=[api.Kernel(id="k1")])  # raw aside


def test_status_change_keeps_the_sdk_call_forms() -> None:
    progress = api.StatusChange("PREPARING", "pulling", None, "s1", kind="progress")
    assert progress.is_progress and not progress.is_terminal and "kind" not in progress.to_json()
    ended = api.StatusChange.from_json({"status": "ERROR", "reason": "x", "at": None, "session_id": "s1"})
    assert ended.is_terminal and ended.kind == "status"


def test_records_handed_out_as_dicts_stay_dicts() -> None:
    vfolder = api.Vfolder.from_json({"id": "v", "shared_with": [{"username": "bob", "permission": "ro"}],
                                     "usage": {"bytes": 5, "files": 1, "dirs": 0, "disk_bytes": 4096, "entries": 1}})
    assert vfolder.shared_with == [{"username": "bob", "permission": "ro"}] and vfolder.usage_bytes == 5
    allocation = {"cpu": "1", "mem": 1, "some_later_key": [1]}  # allocation records are open
    assert api.Kernel(id="k", allocation=allocation).to_json()["allocation"] == allocation


def test_the_document_describes_every_answer_with_a_named_schema() -> None:
    from corral.manager.api.app import PUBLIC_ROUTES
    from corral.manager.api.routes import build_openapi

    document = build_openapi(PUBLIC_ROUTES, "0")
    schemas = document["components"]["schemas"]
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for code, response in operation["responses"].items():
                for media_type, media in response.get("content", {}).items():
                    schema = media.get("x-item-schema", media["schema"])
                    assert schema.get("$ref", "").rsplit("/", 1)[-1] in schemas, (method, path, code, media_type)
    assert "status_history" not in schemas["Session"]["required"]
    assert set(schemas["Problem"]["required"]) == {"type", "title", "status", "detail"}
