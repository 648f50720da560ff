"""Run a command and report its peak RSS; a lean middleman used by run.py.

    python measure.py OUT.json TIMEOUT -- CMD ...

Why a middleman: on Linux a process's ru_maxrss also counts the peak RSS of
the address space it replaced at exec().  A child spawned (fork/vfork) by
run.py itself would inherit run.py's peak, which holds the benchmark data and
pandas.  This script imports almost nothing, so the command it spawns starts
from a floor of about 10 MB; its peak RSS comes from os.wait4.
TIMEOUT is in seconds (0: none); on a timeout the command is killed.
"""

import json
import os
import subprocess
import sys
import time


def main() -> int:
    out, timeout = sys.argv[1], float(sys.argv[2])
    cmd = sys.argv[sys.argv.index("--") + 1:]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL)
    timed_out = False
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if timeout > 0 and time.perf_counter() - t0 > timeout:
            proc.kill()
            pid, status, usage = os.wait4(proc.pid, 0)
            timed_out = True
            break
        time.sleep(0.02)
    proc.returncode = os.waitstatus_to_exitcode(status)
    with open(out, "w") as fh:
        json.dump({"returncode": proc.returncode, "timed_out": timed_out, "wall": time.perf_counter() - t0,
                   "maxrss_kb": usage.ru_maxrss}, fh)
    return 0


if __name__ == "__main__":
    sys.exit(main())
