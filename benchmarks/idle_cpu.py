"""Idle CPU of `dunning daemon`: start it on a small book with the default timetable, let it settle, then
read its CPU time from /proc/<pid>/stat over a quiet window. Prints JSON.

    .venv/bin/python benchmarks/idle_cpu.py [SECONDS]      # default 30
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DUNNING = shutil.which("dunning", path=str(Path(sys.executable).parent)) or "dunning"
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process, in seconds (fields 14 and 15 of /proc/<pid>/stat)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # the command name may contain spaces
    return (int(fields[11]) + int(fields[12])) / TICKS


def main(window: float = 30.0) -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        shutil.copytree(ROOT / "rules", root / "rules")
        (root / "config.yaml").write_text("database: sqlite:///dunning.db\ntimezone: Europe/Berlin\n")
        (root / "customers.csv").write_text("id,name,email\nC1,Acme,ap@acme.example\n")
        (root / "invoices.csv").write_text(
            "number,customer_id,currency,amount,issued_on,due_on,tags\nINV-1,C1,EUR,100.00,2026-01-01,2026-02-01,\n"
        )
        env = {**os.environ, "DUNNING_CONFIG": str(root / "config.yaml")}
        for kind in ("customers", "invoices"):
            subprocess.run([DUNNING, "import", kind, f"{kind}.csv"], cwd=root, env=env, check=True, capture_output=True)
        log = (root / "daemon.log").open("w")
        proc = subprocess.Popen(
            [DUNNING, "daemon", "--health-port", "0"], cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            time.sleep(8)  # start-up, the catch-up sweep and first dispatch are not idle time
            start_cpu, start = cpu_seconds(proc.pid), time.monotonic()
            time.sleep(window)
            used, elapsed = cpu_seconds(proc.pid) - start_cpu, time.monotonic() - start
        finally:
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=30)
            log.close()
        print(
            json.dumps(
                {
                    "window_seconds": round(elapsed, 1),
                    "cpu_seconds": round(used, 3),
                    "cpu_percent_of_one_core": round(100 * used / elapsed, 3),
                    "clock_ticks_per_second": TICKS,
                    "exit_code": code,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 30.0)
