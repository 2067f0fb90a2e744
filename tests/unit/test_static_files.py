"""Static files are served by name from an allow-list only, with their media type and ``no-cache``."""

from __future__ import annotations

import pytest
from fastapi import HTTPException

from bot.web.static_files import STATIC, asset

ALLOWED = {"console.js": "application/javascript", "missing.css": "text/css"}


def test_an_allowed_file_comes_with_its_media_type_and_no_cache() -> None:
    response = asset("console.js", ALLOWED, {"Access-Control-Allow-Origin": "*"})
    assert response.path == STATIC / "console.js"
    assert response.media_type == "application/javascript"
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["access-control-allow-origin"] == "*"


@pytest.mark.parametrize("name", ["admin.js", "../config.py", "../../bot/config.py", "missing.css", ""])
def test_any_other_name_is_not_found(name: str) -> None:
    with pytest.raises(HTTPException) as refused:
        asset(name, ALLOWED)
    assert refused.value.status_code == 404
