"""Python loads this at start-up in a process that `tests/peak_rss.run_measured` launches
(it puts this folder on PYTHONPATH): when the program's own work is done, after every atexit
handler (Ray's shutdown included), it writes the process's peak resident memory, or its
waited-for children's where that is larger (ffmpeg). What comes after is left out: the C++
static destructors of the CUDA libraries that `import torch` maps fault ~150 MB of their
pages in at exit, in a process that never used a GPU (`import torch` alone: 584 MB before
exit, 737 MB by `wait4`), and how many depends on the page cache, not on bolly-ray.
"""

import atexit
import os
import resource
from pathlib import Path

REPORT = os.environ.pop("PEAK_RSS_REPORT", None)  # popped: not for this process's children


def write_peak() -> None:
    if REPORT is None:
        return
    status = Path("/proc/self/status").read_text()
    own_kb = next(int(line.split()[1]) for line in status.splitlines()
                  if line.startswith("VmHWM:"))
    children_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    Path(REPORT).write_text(str(max(own_kb, children_kb)))


if REPORT:
    atexit.register(write_peak)  # the first registered runs last
