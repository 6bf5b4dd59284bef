"""Write the manager's OpenAPI document to manager/webui/openapi.json (no server needed).

    python manager/webui/dump_openapi.py [OUT]

`npm run gen:api` turns the saved copy into src/api/schema.d.ts; `npm run typecheck`
then fails when a server change breaks what the UI uses.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from corral.common.version import VERSION
from corral.manager.api.app import PUBLIC_ROUTES, build_openapi


def main(argv: list[str]) -> int:
    out = Path(argv[1]) if len(argv) > 1 else Path(__file__).with_name("openapi.json")
    doc = build_openapi(PUBLIC_ROUTES, VERSION)
    text = json.dumps(doc, indent=1, sort_keys=True) + "\n"
    if not out.exists() or out.read_text() != text:
        out.write_text(text)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
