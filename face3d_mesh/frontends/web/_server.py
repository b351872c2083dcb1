"""Start the web app's Streamlit server as a child process, and stop it on Ctrl-C."""

from __future__ import annotations

import importlib.util
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from ...errors import UsageError
from ._session import UPLOAD_LIMIT_MB

__all__ = ["APP_PATH", "run_web", "streamlit_command"]

#: The Streamlit script (with its ``.streamlit/config.toml`` beside it).
APP_PATH = Path(__file__).resolve().parent / "app.py"
_START_TIMEOUT_S = 90.0
_STOP_TIMEOUT_S = 10.0


def streamlit_command(*, host: str = "127.0.0.1", port: int = 8501) -> list[str]:
    """The command line that serves the app on ``host:port`` with safe settings.

    Returns
    -------
    list of str
        ``python -m streamlit run app.py`` with: headless, no usage statistics, uploads
        up to :data:`~._session.UPLOAD_LIMIT_MB` MB, XSRF protection on, no file watcher.
    """
    flags = {
        "server.address": host,
        "server.port": str(port),
        "server.headless": "true",
        "server.maxUploadSize": str(UPLOAD_LIMIT_MB),
        "server.enableXsrfProtection": "true",
        "server.fileWatcherType": "none",
        "server.runOnSave": "false",
        "browser.gatherUsageStats": "false",
    }
    command = [sys.executable, "-m", "streamlit", "run", str(APP_PATH)]
    for name, value in flags.items():
        command += [f"--{name}", value]
    return command


def _check_port(host: str, port: int) -> None:
    if not 1 <= port <= 65535:
        raise UsageError(f"port must be 1..65535, got {port}")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise UsageError(f"cannot listen on {host!r}: {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        try:
            probe.bind(address)
        except OSError as exc:
            raise UsageError(
                f"cannot listen on {host}:{port} ({exc.strerror}); "
                "is another server running there? Pass --port N"
            ) from None


def _url(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    return f"http://{'[' + shown + ']' if ':' in shown else shown}:{port}"


def _wait_until_up(process, url: str) -> bool:
    deadline = time.monotonic() + _START_TIMEOUT_S
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as answer:
                if answer.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            time.sleep(0.25)
    return False


def _stop(process) -> None:
    """Ask the server to stop (SIGINT, as Ctrl-C does), then insist."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=_STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.terminate()
        try:
            process.wait(timeout=_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class _Stop(Exception):
    """SIGTERM arrived: stop like on Ctrl-C."""


def run_web(*, host: str = "127.0.0.1", port: int = 8501) -> int:
    """Serve the web app on ``host:port`` until Ctrl-C (or SIGTERM); returns the exit code.

    Raises
    ------
    UsageError
        Streamlit or Plotly is missing, or the address cannot be listened on.
    """
    for module in ("streamlit", "plotly"):
        if importlib.util.find_spec(module) is None:
            raise UsageError(f"the web app needs {module}: pip install streamlit plotly")
    _check_port(host, port)
    err = sys.stderr if _has_fileno(sys.stderr) else None
    process = subprocess.Popen(streamlit_command(host=host, port=port), stderr=err)
    previous = signal.getsignal(signal.SIGTERM)

    def on_term(*_):
        raise _Stop

    signal.signal(signal.SIGTERM, on_term)
    url = _url(host, port)
    try:
        if not _wait_until_up(process, url):
            _stop(process)
            print("face3d-mesh web: the server did not start (see the messages above)",
                  file=sys.stderr)  # fmt: skip
            return 1
        where = (
            f"{url}"
            if host not in ("0.0.0.0", "::")
            else (f"{url} here, http://{socket.gethostname()}:{port} from other machines")
        )
        print(f"face3d-mesh web: open {where} in a browser; Ctrl-C stops the server",
              flush=True)  # fmt: skip
        code = process.wait()
        print(f"face3d-mesh web: the server stopped (exit code {code})", file=sys.stderr)
        return 1 if code else 0
    except (KeyboardInterrupt, _Stop):
        _stop(process)
        print("face3d-mesh web: stopped", flush=True)
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)
        if process.poll() is None:
            _stop(process)


def _has_fileno(stream) -> bool:
    try:
        stream.fileno()
    except (AttributeError, OSError, ValueError):
        return False
    return True
