"""The least a Flask app under gunicorn can do per request: three JSON endpoints with nothing
behind them, no hooks, no database. bench/floor.py serves it exactly as the IdP is served."""

from flask import Flask

app = Flask(__name__)


@app.get("/healthz")
def healthz():
    return {"status": "ok"}


@app.get("/step/<int:n>")
def step(n: int):
    return {"step": n, "ok": True}
