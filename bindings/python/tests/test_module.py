"""The module itself: version, exception classes."""
import re

import strata


def test_version_is_the_librarys():
    assert re.fullmatch(r"\d+\.\d+\.\d+", strata.__version__)


def test_exception_hierarchy():
    for cls in (strata.NotFoundError, strata.CorruptError, strata.LockedError,
                strata.LimitError, strata.ConflictError, strata.StrataOSError):
        assert issubclass(cls, strata.Error)
    assert issubclass(strata.NotFoundError, KeyError)
    assert issubclass(strata.StrataOSError, OSError)


def test_missing_file_is_an_os_error_naming_it(tmp_path):
    path = tmp_path / "missing.region"
    try:
        strata.Region(path)
    except strata.StrataOSError as e:
        assert e.errno == 2
        assert e.name == "STRATA_E_NOENT"
        assert str(path) in str(e)
    else:
        raise AssertionError("opening a missing file succeeded")
