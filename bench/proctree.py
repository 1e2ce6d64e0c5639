"""The processes of a running Spark job, read from /proc, for benchmarks that sample a job's
CPU and memory from outside it (bench/dedup.py, bench/scaling.py): spark-submit's JVM forks
Python workers that no in-process counter sees."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


@dataclass(frozen=True)
class Proc:
    cpu_s: float  # user + system, its own and its reaped children's
    rss_kb: int
    cmd: str


def process_tree(root: int) -> list[Proc]:
    """``root`` and all its living descendants. A finished child's CPU moves into its parent's
    cutime/cstime when it is reaped, so summed CPU stays continuous as workers come and go."""
    procs: dict[int, tuple[int, Proc]] = {}
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            f = (p / "stat").read_text().rsplit(")", 1)[1].split()
            rss = int((p / "statm").read_text().split()[1]) * PAGE_KB
            cmd = (p / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, IndexError, ValueError):
            continue  # gone between the listing and the read
        procs[int(p.name)] = (int(f[1]), Proc(sum(int(x) for x in f[11:15]) / TICK, rss, cmd))
    tree, frontier = set(), {root}
    while frontier:
        tree |= frontier
        frontier = {pid for pid, (ppid, _) in procs.items() if ppid in frontier} - tree
    return [procs[pid][1] for pid in sorted(tree) if pid in procs]
