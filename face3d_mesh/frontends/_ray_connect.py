"""Connecting the batch's driver to Ray: a new local instance, or a cluster that answers.

``ray.init`` on an address where nothing answers may wait for minutes; :func:`connect`
asks first (one gRPC call, bounded) and turns every failure into a one-line
:class:`~face3d_mesh.errors.UsageError` (exit code 2).
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import UsageError

__all__ = ["connect", "import_ray", "reason"]

RAY_MISSING = "--ray needs Ray: pip install 'face3d_mesh[cluster]'"
_GCS_PORT, _CLIENT_PORT = 6379, 10001


def import_ray():
    try:
        import ray
    except ImportError:
        raise UsageError(RAY_MISSING) from None
    return ray


def reason(exc: BaseException, *, last: bool = False) -> str:
    """One line of an exception's message (the first; or the last, where a traceback ends
    with its cause), with the exception's name."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    return lines[-1][:300] if last else f"{type(exc).__name__}: {lines[0][:200]}"


def _with_port(address: str) -> str:
    """``address`` with Ray's default port when it names none."""
    client = address.startswith("ray://")
    host = address[len("ray://") :] if client else address
    if ":" in host.rsplit("]", 1)[-1]:
        return address
    return f"{address}:{_CLIENT_PORT if client else _GCS_PORT}"


def _probe(address: str, timeout_s: float) -> None:
    """Raise UsageError unless a Ray GCS (``HOST:PORT``) or Ray Client server (``ray://``)
    answers at ``address`` within ``timeout_s``: ``ray.init`` alone may wait for minutes."""
    import grpc

    client = address.startswith("ray://")
    service = "RayletDriver/ClusterInfo" if client else "NodeInfoGcsService/GetClusterId"
    target = address[len("ray://") :] if client else address
    channel = grpc.insecure_channel(target, options=[("grpc.enable_http_proxy", 0)])
    try:
        channel.unary_unary(f"/ray.rpc.{service}")(b"", timeout=timeout_s)
    except grpc.RpcError as exc:
        code = exc.code()
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            why = f"no answer within {timeout_s:g} s"
        elif code == grpc.StatusCode.UNAVAILABLE:
            why = (exc.details() or "unavailable").rsplit(": ", 1)[-1].strip("[]")
        elif code == grpc.StatusCode.UNIMPLEMENTED:
            raise UsageError(f"{address} answers, but it is not a Ray cluster") from None
        else:  # any other answer (a bad request, a missing token) comes from Ray itself
            return
        raise UsageError(f"cannot reach the Ray cluster at {address} ({why})") from None
    finally:
        channel.close()


def connect(ray, address: str, *, timeout_s: float) -> bool:
    """Connect this process to Ray; True when it did (and must ``ray.shutdown()`` after)."""
    if ray.is_initialized():
        return False
    quiet = {"logging_level": "ERROR", "log_to_driver": False}
    if address == "local":
        try:
            ray.init(address="local", include_dashboard=False, **quiet)
        except (ConnectionError, RuntimeError, ValueError, OSError) as exc:
            raise UsageError(f"cannot start a local Ray instance: {reason(exc)}") from None
        return True
    target = os.environ.get("RAY_ADDRESS", "auto") if address == "auto" else address
    if target != "auto":
        target = _with_port(target)
        _probe(target, timeout_s)
    # The actors import this very code (shipped once per connection), wherever they run.
    package = str(Path(__file__).resolve().parents[1])
    runtime_env = {"py_modules": [package], "excludes": ["__pycache__"]}
    try:
        ray.init(address=target, runtime_env=runtime_env, **quiet)
    except (ConnectionError, RuntimeError, ValueError, TimeoutError) as exc:
        raise UsageError(f"cannot join the Ray cluster at {address}: {reason(exc)}") from None
    return True
