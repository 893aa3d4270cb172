"""Ends what a process started when that process ends, however it ends (SIGKILL included): the
local Ray instance of `tools.run` and everything under it.

Ray ties its own processes to the driver that started them (`prctl(PR_SET_PDEATHSIG)` on the
GCS server and the raylet), but not the raylet's agents (`ray::DashboardAgent`,
`ray::RuntimeEnvAgent`): when the driver is killed they outlive it, re-parented to init. A
signal handler cannot help with SIGKILL, so a process of its own watches: `watch` notes every
descendant of the driver once a second and, once the driver is gone, kills those still running
and their children. It runs in a session of its own (`start`), so that Ctrl-C on the terminal,
which reaches the driver's whole process group, does not end it first.
"""

import os
import subprocess
import sys
import time
from pathlib import Path

import psutil

INTERVAL = 1.0  # seconds between two looks at the driver's descendants


def start() -> subprocess.Popen[bytes]:
    """Start a watchdog of this process: :return: it (it ends by itself after this one)."""
    root = Path(__file__).resolve().parents[1]
    code = "import sys; from tools.watchdog import watch; watch(int(sys.argv[1]))"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")])),
    }
    return subprocess.Popen(
        [sys.executable, "-c", code, str(os.getpid())],
        cwd=root,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def watch(driver_pid: int, interval: float = INTERVAL) -> None:
    """Until process `driver_pid` ends, note its descendants every `interval` seconds; then
    kill (SIGKILL) those still running, with their own children. A process is known by its pid
    and start time (psutil), so a pid reused meanwhile is never hit."""
    try:
        driver = psutil.Process(driver_pid)
    except psutil.NoSuchProcess:
        return
    me = os.getpid()
    known: dict[int, psutil.Process] = {}
    while _alive(driver):
        try:
            for child in driver.children(recursive=True):
                if child.pid != me:
                    known.setdefault(child.pid, child)
        except psutil.Error:
            pass
        known = {pid: process for pid, process in known.items() if _alive(process)}
        time.sleep(interval)
    victims = [process for process in known.values() if _alive(process)]
    for process in list(victims):
        try:
            victims.extend(process.children(recursive=True))
        except psutil.Error:
            continue
    for process in victims:
        try:
            process.kill()
        except psutil.Error:
            continue
