"""The command line's front: usage errors, validate, the emulator door, the public API."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

import pytest

import intersect_batch
from intersect_batch import cli
from tests.support import write_jobs

EXAMPLES = Path(__file__).resolve().parent.parent / "configs"


def test_validate_accepts_the_examples(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["validate", str(EXAMPLES)]) == 0
    assert "0 error(s)" in capsys.readouterr().out


def test_validate_names_file_line_job_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_jobs(tmp_path, "a.yaml", [{"id": "ok", "targets": ["a.example"]}])
    write_jobs(tmp_path, "b.yaml", [{"id": "bad", "targets": ["a.example"], "page_size": 0}])
    assert cli.main(["validate", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    assert "1 valid job(s) in 2 file(s), 1 error(s)" in captured.out
    assert "b.yaml:" in captured.err and "job 'bad'" in captured.err
    assert "page_size" in captured.err


def test_missing_credentials_stop_before_any_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("DATAFORSEO_LOGIN", "DATAFORSEO_PASSWORD", "AISA_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    write_jobs(tmp_path / "configs", "a.yaml", [{"id": "ok", "targets": ["a.example"]}])
    # Port 9 (discard) is never called: the run must stop before.
    args = ["run", str(tmp_path / "configs"), "--out", str(tmp_path / "out"),
            "--base-url", "http://127.0.0.1:9/v3", "--log-format", "json"]  # fmt: skip
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert "DATAFORSEO_LOGIN and DATAFORSEO_PASSWORD" in err
    assert cli.main([*args, "--provider", "aisa"]) == 2
    assert "AISA_API_KEY" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_usage_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["run", str(tmp_path / "nowhere")]) == 2
    assert "no valid job" in capsys.readouterr().err
    with pytest.raises(SystemExit) as bad_date:
        cli.main(["run", str(tmp_path), "--run-date", "29/11/2026"])
    assert bad_date.value.code == 2


def test_the_emulator_and_the_version_through_the_one_command(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as emulate:
        cli.main(["emulate", "--help"])
    assert emulate.value.code == 0 and "--rate-per-minute" in capsys.readouterr().out
    with pytest.raises(SystemExit) as version:
        cli.main(["--version"])
    assert version.value.code == 0
    assert capsys.readouterr().out.strip() == f"intersect-batch {intersect_batch.__version__}"


def _isort_key(name: str) -> tuple[int, str]:
    # CONSTANTS, then Classes, then functions: the order ruff's RUF022 keeps.
    kind = 0 if name.isupper() else 1 if name[0].isupper() else 2
    return kind, name


def test_every_all_is_sorted_and_names_what_exists() -> None:
    modules = [intersect_batch]
    for info in pkgutil.walk_packages(intersect_batch.__path__, "intersect_batch."):
        if info.name.endswith("__main__"):
            continue
        modules.append(importlib.import_module(info.name))
    for module in modules:
        names = getattr(module, "__all__", None)
        if names is None:
            continue
        assert list(names) == sorted(names, key=_isort_key), module.__name__
        for name in names:
            assert hasattr(module, name), f"{module.__name__}.{name}"
    public = {n for n in vars(intersect_batch) if not n.startswith("_")} - {"annotations"}
    submodules = {m.__name__.rsplit(".", 1)[1] for m in modules[1:]}
    assert set(intersect_batch.__all__) - {"__version__"} == public - submodules
