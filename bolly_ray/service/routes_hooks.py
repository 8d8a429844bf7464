"""Media-server webhooks: a film added to Jellyfin, Emby or Plex gets subtitles beside it.

Each endpoint takes the item's path from the payload (mapped with `--path-map` when the
media server sees the library under another path, as one in a container does) and subtitles
it like a watch folder does (the path must lie under an allowed root). Emby's payload
carries `Item.Path`, as a JSON body or the multipart field `data`. Jellyfin's webhook plugin
sends the template the user writes, and its variables name the item (`{{ItemId}}`), not its
file: Jellyfin's API gives the path (`serve --jellyfin-url` with `JELLYFIN_TOKEN`), unless
the payload carries `Path` itself. Plex's payload (multipart field `payload`) names the item
by `ratingKey` only, and Plex's API gives the file (`serve --plex-url` with `PLEX_TOKEN`).
Events other than "item added" are acknowledged and ignored.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

import requests
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool

from bolly_ray.service.context import Service, service_of
from bolly_ray.service.errors import RequestError

router = APIRouter(prefix="/webhooks")

ADDED = {"itemadded", "library.new", "item.added", "library.added"}
PLEX_TOKEN_ENV = "PLEX_TOKEN"
JELLYFIN_TOKEN_ENV = "JELLYFIN_TOKEN"


@router.post("/jellyfin")
async def jellyfin(request: Request) -> dict[str, Any]:
    service = service_of(request)
    payload = await _json_or_form(request, "data")
    event = str(payload.get("NotificationType") or payload.get("Event") or "ItemAdded")
    if event.lower() not in ADDED:
        return {"ignored": f"event {event!r}"}
    path = _item_path(payload)
    if path is None and payload.get("ItemId"):
        path = await run_in_threadpool(jellyfin_file, service, str(payload["ItemId"]))
    return await _take(service, event, path)


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
        raise RequestError("the Plex payload names no item (Metadata.ratingKey)", status=422)
    path = await run_in_threadpool(plex_file, service, key)
    return await _take(service, event, path)


async def _take(service: Service, event: str, path: str | None) -> dict[str, Any]:
    if event.lower().replace(" ", "") not in ADDED:
        return {"ignored": f"event {event!r}"}
    if not path:
        raise RequestError("the webhook carries no item path (Path or Item.Path)", status=422)
    film = service.allowed_path(service.settings.local_path(path))
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
        raise RequestError("the webhook's payload is not JSON") from None
    if not isinstance(data, dict):
        raise RequestError(f"the webhook carries no JSON object (a JSON body or the form "
                           f"field {field})")
    return data


def _item_path(payload: dict[str, Any]) -> str | None:
    item = payload.get("Item")
    nested = item.get("Path") if isinstance(item, dict) else None
    found = payload.get("Path") or payload.get("ItemPath") or nested
    return str(found) if found else None


def plex_file(service: Service, rating_key: str) -> str:
    """The file of a Plex item: `/library/metadata/<ratingKey>`, Media[0].Part[0].file."""
    return _ask_server("Plex", service.settings.plex_url, PLEX_TOKEN_ENV,
                       f"/library/metadata/{rating_key}", "X-Plex-Token", rating_key,
                       lambda a: a["MediaContainer"]["Metadata"][0]["Media"][0]["Part"][0]["file"])


def jellyfin_file(service: Service, item_id: str) -> str:
    """The file of a Jellyfin item: `/Items?ids=<id>&fields=Path`, Items[0].Path."""
    return _ask_server("Jellyfin", service.settings.jellyfin_url, JELLYFIN_TOKEN_ENV,
                       f"/Items?ids={item_id}&fields=Path", "X-Emby-Token", item_id,
                       lambda a: a["Items"][0]["Path"])


def _ask_server(name: str, base: str | None, token_env: str, path: str, token_header: str,
                item: str, pick: Callable[[Any], Any]) -> str:
    token = os.environ.get(token_env, "")
    if not base or not token:
        raise RequestError(f"{name} webhooks need serve --{name.lower()}-url and {token_env}",
                           status=422)
    headers = {"Accept": "application/json", token_header: token}
    try:
        answer = requests.get(base.rstrip("/") + path, headers=headers, timeout=10)
        answer.raise_for_status()
        return str(pick(answer.json()))
    except (requests.RequestException, ValueError, KeyError, IndexError, TypeError) as err:
        raise RequestError(f"{name} did not give item {item}'s file: {type(err).__name__}",
                           status=502) from None
