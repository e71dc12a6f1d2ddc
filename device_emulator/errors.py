"""The device emulator's one error hierarchy.

Every error the device raises derives from :class:`DeviceEmulatorError`; the
ones a caller reacts to by a stable code (printed by the CLI, compared by
tests and conformance checks) derive from :class:`CodedError`:

* :class:`CdmError`: a dialect's CDM refused what the server sent, or could
  not build a request (every dialect raises it; the server's stable code wins
  when the answer carried one);
* :class:`NotSupported`: the dialect has no such operation (renewal of a
  FairPlay-style key, a Clear Key end-of-playback report, ...);
* :class:`TeeError`: the emulated TEE would not load or use a license;
* :class:`LifecycleError`: an offline-lifecycle step was refused.

:class:`TransportError` (the server could not be reached) and
:class:`DeviceError` (the device directory is unusable) carry no code.
"""

from __future__ import annotations


class DeviceEmulatorError(Exception):
    """Base of every device emulator error."""


class CodedError(DeviceEmulatorError):
    """An error with a stable ``code`` and a one-line ``message``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class CdmError(CodedError):
    """The CDM refused something the server sent (or could not build a request)."""


class NotSupported(CdmError):
    """The dialect has no such operation; the CLI reports it as a usage error when asked for explicitly."""


class LifecycleError(CodedError):
    """An offline-lifecycle step (play, remove, renew, sync) was refused."""


class TeeError(CodedError):
    """A license could not be loaded or used in the TEE; ``code`` is a stable reason."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(code, message)
        self.args = (message,)

    def __str__(self) -> str:
        return self.message


class TransportError(DeviceEmulatorError):
    """The server could not be reached (one-line reason in the message)."""


class DeviceError(DeviceEmulatorError):
    """The device directory is missing, of another format, or inconsistent."""
