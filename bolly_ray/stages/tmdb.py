"""tmdb: the film's details, cast (with character names) and crew from The Movie Database.

The film is found by `tmdb.movie_id`, else by searching its title and year: the job's own,
or parsed from the media file name by guessit ("Dilwale.Dulhania.Le.Jayenge.1995.1080p.mkv").
The credentials come from the environment of the driver (TMDB_READ_TOKEN or TMDB_API_KEY)
and reach the stage through `ctx.secrets` only. The stage is optional: without credentials
it is skipped before anything runs, and when TMDB cannot be reached it fails alone; either
way the job goes on without cast names and the manifest says why.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import Field

from bolly_ray.core.secrets import Secrets
from bolly_ray.errors import StageError
from bolly_ray.spec import (
    OptionalStageSettings,
    Resources,
    Stage,
    StageContext,
    StageResult,
    StageSpec,
)
from bolly_ray.stages.tmdb_client import TmdbClient, TmdbError, TmdbUnavailable

SECRETS = ("tmdb_read_token", "tmdb_api_key")


class TmdbSettings(OptionalStageSettings):
    api_base: str = Field(default="https://api.themoviedb.org/3", description="TMDB API root")
    movie_id: int | None = Field(default=None, ge=1, description="Skip the search")
    language: str = Field(default="en-US", description="Language of titles and names")
    cache_dir: Path = Field(default=Path("~/.cache/bolly-ray/tmdb"),
                            description="Responses kept on disk; shared by every job")
    cache_days: float = Field(default=30.0, ge=0, description="How long a cached answer holds")
    max_cast: int = Field(default=60, ge=1, le=500, description="Cast members kept, by billing")
    max_attempts: int = Field(default=4, ge=1, le=10, description="Requests per call before "
                              "giving up (429, 5xx, no connection)")
    backoff_s: float = Field(default=1.0, ge=0, le=60, description="First pause between "
                             "attempts; doubles each time (429s wait their Retry-After)")


class TmdbStage(Stage[TmdbSettings]):
    spec = StageSpec(
        name="tmdb", inputs=(), outputs=("film_metadata",), settings_model=TmdbSettings,
        job_fields=("title", "year", "media_name"), secrets=SECRETS, needs_network=True,
        critical=False, resources=Resources(cpus=0.25, memory_mb=256),
        image_requirements=("requests>=2", "guessit>=3"), timeout_s=300, version="1")

    def missing_models(self, settings: TmdbSettings) -> list[str]:
        if Secrets.from_env().only(SECRETS).reveal():
            return []
        return ["tmdb: no TMDB_READ_TOKEN or TMDB_API_KEY in the environment (the film's "
                "cast cannot be looked up)"]

    def run(self, ctx: StageContext[TmdbSettings], model: Any = None) -> StageResult:
        settings = ctx.settings
        client = TmdbClient(settings.api_base, ctx.secrets, settings.cache_dir.expanduser(),
                            settings.cache_days * 86400, settings.max_attempts,
                            settings.backoff_s)
        try:
            film = look_up(client, settings, dict(ctx.job))
        except (TmdbError, TmdbUnavailable) as err:  # the client has retried already
            raise StageError(f"tmdb: {err}") from None
        (ctx.out_dir / "film.json").write_text(
            json.dumps(film, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        ctx.log.info("tmdb: %s (%s), %d cast", film["title"], film["year"], len(film["cast"]))
        return StageResult(outputs={"film_metadata": "film.json"},
                           metrics={"cast": len(film["cast"]),
                                    "requests": client.requests_made})


def title_and_year(job: dict[str, Any]) -> tuple[str, int | None]:
    if job.get("title"):
        return str(job["title"]), job.get("year")
    from guessit import guessit

    # guessit's "other" tags read the "Om" of "Om Shanti Om" as Open Matte; we need none
    guess = guessit(str(job.get("media_name") or ""), {"type": "movie", "excludes": ["other"]})
    title = str(guess.get("title") or "").strip()
    if not title:
        raise TmdbError(f"no title in the job and none in the file name "
                        f"{job.get('media_name')!r}: set the job's title")
    year = guess.get("year")
    return title, job.get("year") or (int(year) if isinstance(year, int) else None)


def look_up(client: TmdbClient, settings: TmdbSettings, job: dict[str, Any]
            ) -> dict[str, Any]:
    source = "movie_id"
    movie_id = settings.movie_id
    if movie_id is None:
        title, year = title_and_year(job)
        params: dict[str, Any] = {"query": title, "language": settings.language}
        if year:
            params["year"] = year
        results = client.get("/search/movie", params).get("results") or []
        if not results:
            raise TmdbError(f"no film called {title!r}" + (f" from {year}" if year else ""))
        movie_id, source = int(results[0]["id"]), f"search: {title!r} {year or ''}".strip()
    details = client.get(f"/movie/{movie_id}", {"language": settings.language,
                                                "append_to_response": "credits"})
    credits = details.get("credits") or {}
    cast = sorted(credits.get("cast") or [], key=lambda c: c.get("order", 1_000_000))
    release = str(details.get("release_date") or "")
    return {
        "tmdb_id": movie_id, "found_by": source, "title": details.get("title"),
        "original_title": details.get("original_title"),
        "original_language": details.get("original_language"),
        "year": int(release[:4]) if release[:4].isdigit() else None,
        "cast": [{"name": c.get("name"), "character": c.get("character") or None,
                  "order": c.get("order")} for c in cast[:settings.max_cast] if c.get("name")],
        "crew": [{"name": c.get("name"), "job": c.get("job")}
                 for c in credits.get("crew") or [] if c.get("name")],
    }
