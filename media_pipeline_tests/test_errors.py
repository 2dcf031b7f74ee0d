"""The one exception tree: every error class of the package is under MediaPipelineError, and the
builtin bases callers relied on before the tree are still there."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import media_pipeline
from media_pipeline import errors


def package_exceptions() -> list[type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for info in pkgutil.walk_packages(media_pipeline.__path__, "media_pipeline."):
        if info.name.endswith("__main__"):
            continue  # runs the command
        module = importlib.import_module(info.name)
        for _, value in inspect.getmembers(module, inspect.isclass):
            if issubclass(value, BaseException) and value.__module__.startswith("media_pipeline"):
                found[f"{value.__module__}.{value.__qualname__}"] = value
    return list(found.values())


def test_every_exception_of_the_package_is_under_the_root() -> None:
    classes = package_exceptions()
    assert len(classes) >= 30
    outside = [c.__qualname__ for c in classes if not issubclass(c, errors.MediaPipelineError)]
    assert outside == []


def test_the_docstring_draws_every_public_class_of_errors_py() -> None:
    for name in errors.__all__:
        assert name in (errors.__doc__ or ""), name
        assert issubclass(getattr(errors, name), errors.MediaPipelineError)


@pytest.mark.parametrize("name,builtin", [
    ("NotFound", LookupError), ("UnknownMedia", LookupError), ("ObjectNotFound", LookupError),
    ("PermissionDenied", PermissionError), ("InvalidInput", ValueError),
    ("ValidationFailed", ValueError), ("UnsafeKey", ValueError), ("SettingsError", ValueError),
    ("SourceConfigError", ValueError), ("LifecycleError", ValueError),
    ("MediaUnavailable", ValueError), ("Conflict", ValueError), ("StorageError", RuntimeError),
    ("CatalogError", RuntimeError), ("AIServiceUnavailable", RuntimeError),
    ("SourcesUnavailable", RuntimeError), ("QueryFailed", RuntimeError),
])
def test_builtin_bases_callers_relied_on_are_kept(name: str, builtin: type) -> None:
    assert issubclass(getattr(errors, name), builtin)


def test_the_modules_that_raised_them_still_export_them() -> None:
    from media_pipeline import lifecycle
    from media_pipeline.access import PermissionDenied
    from media_pipeline.catalog import CatalogError
    from media_pipeline.library import MediaUnavailable, UnknownMedia, ValidationFailed
    from media_pipeline.references.sources import SourceError
    from media_pipeline.settings import SettingsError
    from media_pipeline.storage.media_storage import StorageError

    assert lifecycle.UnknownMedia is UnknownMedia is errors.UnknownMedia
    assert (PermissionDenied, CatalogError, MediaUnavailable, ValidationFailed, SourceError,
            SettingsError, StorageError) == (
        errors.PermissionDenied, errors.CatalogError, errors.MediaUnavailable,
        errors.ValidationFailed, errors.SourceError, errors.SettingsError, errors.StorageError)


def test_errors_with_arguments_survive_pickling() -> None:
    import pickle

    for exc in (errors.SourceError("site", "gone"), errors.SourceConfigError(["a", "b"]),
                errors.UnknownMedia.of("42")):
        again = pickle.loads(pickle.dumps(exc))
        assert type(again) is type(exc) and str(again) == str(exc)


def test_an_unknown_media_id_names_it() -> None:
    exc = errors.UnknownMedia.of("42")
    assert exc.media_id == "42" and "'42'" in str(exc)
