"""Media-server webhooks: a film added to Jellyfin, Emby or Plex gets subtitles beside it.

Each endpoint takes the item's path from the payload and subtitles it like a watch folder
does (the path must lie under an allowed root). Emby's payload carries `Item.Path`, as a
JSON body or the multipart field `data`. Jellyfin's webhook plugin sends the template the
user writes: include `"Path": "{{ItemPath}}"` or an `Item.Path`. Plex's payload (multipart
field `payload`) names the item by `ratingKey` only, and Plex's own API gives the file:
`serve --plex-url` with `PLEX_TOKEN` in the environment. Events other than "item added"
are acknowledged and ignored.
"""

from __future__ import annotations

import json
import os
from typing import Any

import requests
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool

from bolly_ray.service.context import Service, service_of
from bolly_ray.service.errors import BadRequest

router = APIRouter(prefix="/webhooks")

ADDED = {"itemadded", "library.new", "item.added", "library.added"}
PLEX_TOKEN_ENV = "PLEX_TOKEN"


@router.post("/jellyfin")
async def jellyfin(request: Request) -> dict[str, Any]:
    payload = await _json_or_form(request, "data")
    event = str(payload.get("NotificationType") or payload.get("Event") or "ItemAdded")
    return await _take(service_of(request), event, _item_path(payload))


@router.post("/emby")
async def emby(request: Request) -> dict[str, Any]:
    payload = await _json_or_form(request, "data")
    return await _take(service_of(request), str(payload.get("Event", "")), _item_path(payload))


@router.post("/plex")
async def plex(request: Request) -> dict[str, Any]:
    service = service_of(request)
    payload = await _json_or_form(request, "payload")
    event = str(payload.get("event", ""))
    if event.lower() not in ADDED:
        return {"ignored": f"event {event!r}"}
    key = str((payload.get("Metadata") or {}).get("ratingKey") or "")
    if not key:
        raise BadRequest("the Plex payload names no item (Metadata.ratingKey)", status=422)
    path = await run_in_threadpool(plex_file, service, key)
    return await _take(service, event, path)


async def _take(service: Service, event: str, path: str | None) -> dict[str, Any]:
    if event.lower().replace(" ", "") not in ADDED:
        return {"ignored": f"event {event!r}"}
    if not path:
        raise BadRequest("the webhook carries no item path (Path or Item.Path)", status=422)
    film = service.allowed_path(path)
    row, fresh = await run_in_threadpool(service.subtitle_film, film)
    return {"job": row.id, "status": "queued" if fresh else row.status.value}


async def _json_or_form(request: Request, field: str) -> dict[str, Any]:
    try:
        if request.headers.get("content-type", "").startswith("application/json"):
            data: Any = await request.json()
        else:
            form = await request.form(max_files=2, max_fields=16)
            value = form.get(field)
            data = json.loads(value) if isinstance(value, str) else None
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("the webhook's payload is not JSON") from None
    if not isinstance(data, dict):
        raise BadRequest(f"the webhook carries no JSON object (a JSON body or the form "
                         f"field {field})")
    return data


def _item_path(payload: dict[str, Any]) -> str | None:
    item = payload.get("Item")
    nested = item.get("Path") if isinstance(item, dict) else None
    found = payload.get("Path") or payload.get("ItemPath") or nested
    return str(found) if found else None


def plex_file(service: Service, rating_key: str) -> str:
    base, token = service.settings.plex_url, os.environ.get(PLEX_TOKEN_ENV, "")
    if not base or not token:
        raise BadRequest(f"Plex webhooks need serve --plex-url and {PLEX_TOKEN_ENV}", status=422)
    try:
        answer = requests.get(f"{base.rstrip('/')}/library/metadata/{rating_key}",
                              headers={"Accept": "application/json", "X-Plex-Token": token},
                              timeout=10)
        answer.raise_for_status()
        items = answer.json()["MediaContainer"]["Metadata"]
        return str(items[0]["Media"][0]["Part"][0]["file"])
    except (requests.RequestException, KeyError, IndexError, ValueError) as err:
        raise BadRequest(f"Plex did not give item {rating_key}'s file: "
                         f"{type(err).__name__}", status=502) from None
