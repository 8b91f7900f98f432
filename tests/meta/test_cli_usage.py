"""Bad command-line input: one line on stderr, exit code 2, no cell run."""

from __future__ import annotations

from pathlib import Path

import pytest

from offload_conformance.harness.cli import main


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--fixture", "nope"], "unknown fixture 'nope'"),
        (["--mode", "ram"], "unknown mode 'ram'"),
        (["--impl", "nope"], "expected upstream, reference, accelerate-state-dict or 'package.module:function'"),
        (["--impl", "no_such_module:save"], "cannot import no_such_module"),
        (["--impl", "tests.broken_impls:missing"], "has no attribute 'missing'"),
        (["--impl", "tests.broken_impls:NOT_CALLABLE"], "not callable"),
        (["--jobs", "0"], "--jobs must be >= 1"),
    ],
)
def test_usage_errors_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert main(["run", "--out", str(tmp_path / "out"), *args]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_out_is_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "file"
    target.write_text("keep me")
    assert main(["run", "--out", str(target)]) == 2
    assert "is a file" in capsys.readouterr().err
    assert target.read_text() == "keep me"


@pytest.mark.parametrize("argv", [["run", "--no-such-option"], ["run", "--require", "vibes"], ["nope"], []])
def test_argparse_errors_are_one_line_too(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1


def test_tampered_fixture_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from offload_conformance.fixtures import by_name, generate

    weights = generate(by_name("mixtral")) / "model.safetensors"
    original = weights.read_bytes()
    weights.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
    try:
        assert main(["run", "--fixture", "mixtral", "--out", str(tmp_path / "o")]) == 2
        err = capsys.readouterr().err
        assert "does not match its manifest hash" in err and err.count("\n") == 1
    finally:
        weights.write_bytes(original)


def test_lists(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["modes"]) == 0
    assert "disk-full+offload_buffers" in capsys.readouterr().out
    assert main(["fixtures"]) == 0
    assert "qwen3_moe" in capsys.readouterr().out
