"""Exceptions mapped from qc_status, carrying qc_last_error()'s message."""
from ._ffi import ffi, lib


class QcoreError(Exception):
    """Base class of every error qcore raises; `status` is the C status name."""

    status = "QC_ERR_INTERNAL"


class InvalidArgumentError(QcoreError, ValueError):
    status = "QC_ERR_INVALID_ARG"


class ShapeError(QcoreError, ValueError):
    status = "QC_ERR_SHAPE"


class DTypeError(QcoreError, TypeError):
    status = "QC_ERR_DTYPE"


class LayoutError(QcoreError, ValueError):
    status = "QC_ERR_LAYOUT"


class NumericError(QcoreError, ArithmeticError):
    status = "QC_ERR_NUMERIC"


class OutOfMemoryError(QcoreError, MemoryError):
    status = "QC_ERR_OUT_OF_MEMORY"


class FileError(QcoreError, OSError):
    status = "QC_ERR_IO"


class FormatError(QcoreError, ValueError):
    status = "QC_ERR_FORMAT"


class UnsupportedError(QcoreError):
    status = "QC_ERR_UNSUPPORTED"


class VersionError(QcoreError):
    status = "QC_ERR_VERSION"


class SingularError(QcoreError, ArithmeticError):
    status = "QC_ERR_SINGULAR"


class IntegerOverflowError(QcoreError, OverflowError):
    status = "QC_ERR_OVERFLOW"


class CancelledError(QcoreError):
    status = "QC_ERR_CANCELLED"


class InternalError(QcoreError):
    status = "QC_ERR_INTERNAL"


_BY_STATUS = {
    getattr(lib, cls.status): cls
    for cls in (
        InvalidArgumentError, ShapeError, DTypeError, LayoutError, NumericError, OutOfMemoryError, FileError,
        FormatError, UnsupportedError, VersionError, SingularError, IntegerOverflowError, CancelledError,
        InternalError,
    )
}


def check(status, function=None):
    """Raises the exception class of a failed status with the library's last-error message. When the
    failing C call only served the Python function `function`, the message is put in its name."""
    if status != lib.QC_OK:
        message = ffi.string(lib.qc_last_error()).decode("utf-8", "replace")
        if function is not None:
            message = "%s: %s" % (function, message.split(": ", 1)[-1])
        raise _BY_STATUS.get(status, QcoreError)(message)
