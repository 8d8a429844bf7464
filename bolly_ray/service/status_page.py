"""The status page: the queue, the stages running on each node, recent jobs with links to
their subtitles and timeline picture.

One small HTML page with no outside assets (it must work on an offline machine) that
polls the jobs API every second; its links are relative, so the page works both at `/`
(with a bearer token in a proxy) and under `/t/<token>/` in a plain browser.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, HTMLResponse

from bolly_ray.engine.report import draw_timeline, stage_runs
from bolly_ray.service.context import service_of
from bolly_ray.service.errors import RequestError

router = APIRouter()

TIMELINE = "timeline.png"

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>bolly-ray</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body { font: 14px system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; } td, th { padding: .3em .8em; text-align: left;
border-bottom: 1px solid #ddd; } .succeeded { color: #17692f; }
.failed, .cancelled { color: #a4161a; } .running { color: #1d4ed8; } code { font-size: 12px; }
</style></head>
<body>
<h1>bolly-ray</h1>
<p id="counts">loading…</p>
<h2>Running now</h2>
<table id="running"><thead><tr><th>node</th><th>job</th><th>stage</th></tr></thead>
<tbody></tbody></table>
<h2>Recent jobs</h2>
<table id="jobs"><thead><tr><th>job</th><th>kind</th><th>status</th><th>media</th>
<th>outputs</th></tr></thead><tbody></tbody></table>
<script>
function cells(row, count) { while (row.cells.length < count) row.insertCell(); return row.cells; }
function link(td, href, text) { const a = document.createElement("a"); a.href = href;
  a.textContent = text; td.appendChild(a); td.appendChild(document.createTextNode(" ")); }
function outputs(td, j) {  // rebuilt only when they change: a link is never pulled away
  const files = (j.files || []).filter(f => f.startsWith("subtitles/"));
  const key = j.status + "|" + files.join(",");
  if (td.dataset.key === key) return;
  td.dataset.key = key; td.replaceChildren();
  for (const f of files) link(td, "jobs/" + j.id + "/files/" + f, f.slice(10));
  if (j.status !== "queued") link(td, "jobs/" + j.id + "/timeline.png", "timeline"); }
function showJob(body, j, position) {
  let row = document.getElementById("job-" + j.id);
  if (!row) { row = body.insertRow(position); row.id = "job-" + j.id; }
  const [id, kind, status, media, out] = cells(row, 5);
  id.textContent = j.id; kind.textContent = j.kind;
  status.textContent = j.status; status.className = j.status + " status";
  media.textContent = (j.media || "").split("/").pop(); outputs(out, j); }
async function refresh() {
  const answer = await fetch("jobs?limit=50");
  if (!answer.ok) { document.getElementById("counts").textContent =
    "cannot read the jobs (" + answer.status + ")"; return; }
  const data = await answer.json();
  document.getElementById("counts").textContent = Object.entries(data.counts)
    .map(([k, v]) => v + " " + k).join(" · ");
  const running = document.querySelector("#running tbody"); running.replaceChildren();
  for (const r of data.running) { const [node, job, stage] = cells(running.insertRow(), 3);
    node.textContent = r.node; job.textContent = r.job; stage.textContent = r.stage; }
  const body = document.querySelector("#jobs tbody");
  data.jobs.slice().reverse().forEach(j => showJob(body, j, 0));
}
refresh(); setInterval(refresh, 1000);
</script></body></html>
"""


@router.get("/", response_class=HTMLResponse)
async def page() -> str:
    return PAGE


@router.get("/jobs/{job_id}/timeline.png")
async def timeline(request: Request, job_id: str) -> FileResponse:
    folder = Path(service_of(request).row(job_id).job_dir)
    if not (folder / "manifest.json").is_file():
        raise RequestError(f"job {job_id} has not started", status=404)
    picture = folder / "logs" / TIMELINE
    await run_in_threadpool(_draw, folder, picture)
    return FileResponse(picture, media_type="image/png")


def _draw(folder: Path, picture: Path) -> None:
    picture.parent.mkdir(parents=True, exist_ok=True)
    draw_timeline(stage_runs(folder), picture)
