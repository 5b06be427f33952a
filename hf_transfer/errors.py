"""Failures a user can fix, told as one paragraph: what went wrong, where, and how to fix it.

The command line (:func:`hf_transfer.cli.main`) prints an expected failure as that paragraph and exits
non-zero; ``--debug`` (or ``HF_TRANSFER_DEBUG=1``) shows the traceback as well. Anything not recognised
here is a bug and keeps its traceback.

Standard library only (the command line's ``--help`` stays light): the ML stack's exception classes are
recognised by name, or looked up only once their module has been imported.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

DEFAULT_ENDPOINT = "https://huggingface.co"
DEBUG_ENV = "HF_TRANSFER_DEBUG"

# Exit codes: 1 a run that failed (training, the network, the Hub), 2 a request that cannot run as given
# (config, arguments, data), 130 interrupted (SIGINT, as shells report it).
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class HubUnreachableError(ConnectionError):
    """The Hub (or the ``HF_ENDPOINT`` in use) could not be reached; the message names the endpoint."""


def hub_endpoint() -> str:
    """The Hub endpoint huggingface_hub talks to (``HF_ENDPOINT``, else huggingface.co)."""
    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None and getattr(constants, "ENDPOINT", None):
        return str(constants.ENDPOINT)
    return os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT


def hub_offline() -> bool:
    """Whether ``HF_HUB_OFFLINE`` is set (huggingface_hub then refuses every request, and datasets with it)."""
    copies = [(name, attr) for name, attr in (("huggingface_hub.constants", "HF_HUB_OFFLINE"),
                                                ("datasets.config", "HF_HUB_OFFLINE")) if name in sys.modules]
    if copies:  # each library copied the variable when it was imported
        return any(bool(getattr(sys.modules[name], attr, False)) for name, attr in copies)
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


_NETWORK_ERRORS = {
    # httpx (huggingface_hub >= 1.0)
    "ConnectError", "ConnectTimeout", "ReadTimeout", "WriteTimeout", "PoolTimeout", "TimeoutException",
    "NetworkError", "TransportError", "RemoteProtocolError", "ProxyError",
    # requests / urllib3 (older stacks, datasets' fsspec)
    "ConnectionError", "MaxRetryError", "NewConnectionError", "Timeout",
    # huggingface_hub
    "OfflineModeIsEnabled",
    # the standard library
    "ConnectionRefusedError", "ConnectionResetError", "gaierror", "TimeoutError",
}


def network_cause(exc: BaseException) -> BaseException | None:
    """The exception in ``exc``'s cause/context chain that says the network failed, if any."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, HubUnreachableError):
            return current
        names = {cls.__name__ for cls in type(current).__mro__}
        if names & _NETWORK_ERRORS and not names & {"HfHubHTTPError", "HTTPStatusError"}:
            return current
        current = current.__cause__ or current.__context__
    return None


def unreachable_message(what: str, exc: BaseException | None = None) -> str:
    """``what`` could not be done because the Hub at the current endpoint is out of reach."""
    endpoint = hub_endpoint()
    if hub_offline() or (exc is not None and "OfflineModeIsEnabled" in f"{type(exc).__name__} {exc}"):
        return (
            f"{what}: HF_HUB_OFFLINE is set, so the Hub ({endpoint}) is not contacted and only files already in "
            "the cache can be used. Unset HF_HUB_OFFLINE to download, or use a local path."
        )
    reason = f" ({type(exc).__name__}: {exc})" if exc is not None and str(exc) else ""
    return (
        f"{what}: could not reach the Hugging Face Hub at {endpoint} (offline?){reason}. Check the network, "
        "proxy and HF_ENDPOINT, or set HF_HUB_OFFLINE=1 to use only files already in the cache."
    )


@dataclass(frozen=True)
class Failure:
    """An expected failure as the command line reports it."""

    message: str
    exit_code: int = EXIT_USAGE


def debug_requested(flag: bool = False) -> bool:
    """``--debug`` or ``HF_TRANSFER_DEBUG`` set to anything but empty/0/false."""
    return flag or os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no")


__all__ = [
    "DEBUG_ENV",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_USAGE",
    "Failure",
    "HubUnreachableError",
    "debug_requested",
    "hub_endpoint",
    "hub_offline",
    "network_cause",
    "unreachable_message",
]
