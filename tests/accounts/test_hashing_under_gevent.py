"""Under gunicorn's gevent worker (the production worker on PostgreSQL), argon2 must not stall
the worker's other requests: it runs on gevent's real threads. Checked in a fresh interpreter,
since monkey-patching cannot be undone in this one."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]

PROBE = r"""
from gevent import monkey
monkey.patch_all()
import json, time, gevent
from idp import create_app
from idp.accounts import passwords

app = create_app({"database_url": "sqlite://", "instance_path": INSTANCE})
gaps = []

def ticker():
    last = time.perf_counter()
    while True:
        gevent.sleep(0.001)
        now = time.perf_counter()
        gaps.append(now - last)
        last = now

def verify_a_few():
    with app.app_context():
        stored = passwords.hash_password("Correct-Horse-42!")
        started = time.perf_counter()
        for _ in range(5):
            assert passwords.verify_password(stored, "Correct-Horse-42!")
        return (time.perf_counter() - started) / 5

tick = gevent.spawn(ticker)
gevent.sleep(0.01)
gaps.clear()
per_hash = gevent.spawn(verify_a_few).get()
gevent.sleep(0.01)  # the ticker's turn, to record the gap it has just had
tick.kill()
print(json.dumps({"per_hash": per_hash, "longest_gap": max(gaps)}))
"""


def test_argon2_leaves_the_gevent_loop_running(tmp_path):
    code = f"INSTANCE = {str(tmp_path)!r}\n" + PROBE
    done = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    # Each hash takes ~15 ms of C; the loop's other greenlet kept ticking all the while.
    assert result["longest_gap"] < result["per_hash"] / 2, result


WRONG_PASSWORD_PROBE = r"""
from gevent import monkey
monkey.patch_all()
from idp import create_app
from idp.accounts import passwords

app = create_app({"database_url": "sqlite://", "instance_path": INSTANCE})
with app.app_context():
    stored = passwords.hash_password("Correct-Horse-42!")
    print("matched" if passwords.verify_password(stored, "wrong") else "refused")
"""


def test_a_wrong_password_under_gevent_is_refused_without_a_traceback(tmp_path):
    # gevent's thread pool prints a traceback for an exception that leaves one of its threads:
    # one per wrong password in the production log.
    code = f"INSTANCE = {str(tmp_path)!r}\n" + WRONG_PASSWORD_PROBE
    done = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "refused"
    assert "Traceback" not in done.stderr
