"""``device-emulator bench-decrypt``: the output shape (figures are not asserted: not a timed test)."""

from __future__ import annotations

import json

from click.testing import CliRunner

from device_emulator.cli import main


def test_json_output_has_a_positive_figure_per_scheme():
    result = CliRunner().invoke(main, ["bench-decrypt", "--json", "--size", "1", "--passes", "1"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.output)
    assert set(figures) == {"cenc_mb_s", "cbcs_mb_s"}
    assert all(isinstance(v, float) and v > 0 for v in figures.values())


def test_text_output_names_both_schemes():
    result = CliRunner().invoke(main, ["bench-decrypt", "--size", "1", "--passes", "1"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert len(lines) == 2 and lines[0].startswith("cenc") and lines[1].startswith("cbcs (AES-CBC, 1:9 video)")
    assert all(line.endswith(" MB/s") for line in lines)


def test_bad_size_is_a_usage_error():
    result = CliRunner().invoke(main, ["bench-decrypt", "--size", "0"])
    assert result.exit_code == 2
