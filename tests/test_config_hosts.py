"""Host names as DNS reads them, and file names as a terminal would: one form, no surprises.

A target is compared in its ASCII (punycode) form, so ``bücher.de`` and
``xn--bcher-kva.de`` are one target written twice; DNS's length rules and the port's
range are checked, each refusal naming the rule. A config file whose name holds a
newline or an escape sequence is named with those characters escaped, in every message.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from intersect_batch import cli
from intersect_batch.config import load_jobs
from intersect_batch.exitcode import ExitCode

LONG_LABEL = "a" * 64
# Five labels of 59 characters: each within 63, the name (299 characters) over 253.
LONG_HOST = ".".join(["a" * 59] * 5)


def _errors(tmp_path: Path, targets: list[str], excludes: list[str] | None = None) -> list[str]:
    text = f"jobs:\n  - id: hosts\n    targets: {json.dumps(targets, ensure_ascii=False)}\n"
    if excludes is not None:
        text += f"    exclude_targets: {json.dumps(excludes, ensure_ascii=False)}\n"
    path = tmp_path / "jobs.yaml"
    path.write_text(text, encoding="utf-8")
    prefix = f"{path}:"
    messages = [str(error) for error in load_jobs(tmp_path).errors]
    assert all(message.startswith(prefix) for message in messages), messages
    return [message.removeprefix(prefix) for message in messages]


def test_a_unicode_domain_and_its_punycode_are_one_target(tmp_path: Path) -> None:
    assert _errors(tmp_path, ["bücher.de", "xn--bcher-kva.de"]) == [
        "3: job 'hosts': targets[1]: 'xn--bcher-kva.de' is listed twice (also targets[0])"
    ]
    assert _errors(tmp_path, ["xn--bcher-kva.de", "https://BÜCHER.de/preise"]) == []
    assert _errors(tmp_path, ["https://bücher.de/a", "https://xn--bcher-kva.de/a"]) == [
        "3: job 'hosts': targets[1]: 'https://xn--bcher-kva.de/a' is listed twice (also targets[0])"
    ]
    assert _errors(tmp_path, ["bücher.de"], ["xn--bcher-kva.de"]) == [
        "4: job 'hosts': exclude_targets[0]: 'xn--bcher-kva.de' is also a target "
        "(targets[0]); no page could link to it and not link to it"
    ]


@pytest.mark.parametrize(
    ("target", "message"),
    [
        (
            "https://example.com:99999/page",
            "'https://example.com:99999/page': a port is a number from 1 to 65535",
        ),
        (
            "https://example.com:0/page",
            "'https://example.com:0/page': a port is a number from 1 to 65535",
        ),
        (
            f"{LONG_LABEL}.example",
            f"'{LONG_LABEL}.example': a part of a host name between dots is at most 63 "
            "characters (in its punycode form)",
        ),
        (
            f"https://{LONG_LABEL}.example/",
            f"'https://{LONG_LABEL}.example/': a part of a host name between dots is at most 63 "
            "characters (in its punycode form)",
        ),
        (
            LONG_HOST,
            f"'{LONG_HOST[:119]}…': a host name is at most 253 characters (in its punycode "
            "form), this one has 299",
        ),
    ],
)
def test_a_host_that_dns_cannot_carry_is_refused_with_the_rule(
    tmp_path: Path, target: str, message: str
) -> None:
    assert _errors(tmp_path, ["zoho.com", target]) == [f"3: job 'hosts': targets[1]: {message}"]


def test_the_longest_names_dns_carries_load(tmp_path: Path) -> None:
    longest = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61])
    assert len(longest) == 253
    assert _errors(tmp_path, [longest, "https://example.com:65535/x", "a" * 63 + ".de"]) == []


@pytest.mark.parametrize("name", ["bad\nname.yaml", "bad\x1b[2Jname.yaml", "bad\rname.yaml"])
def test_a_file_name_with_control_characters_is_escaped_in_every_message(
    tmp_path: Path, name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    configs = tmp_path / "configs"
    configs.mkdir()
    (configs / name).write_text("jobs:\n  - id: x\n    targets: [hubspot]\n", encoding="utf-8")
    (configs / "ok.yaml").write_text("jobs:\n  - id: x\n    targets: [a.com]\n", encoding="utf-8")
    assert cli.main(["validate", str(configs)]) == ExitCode.ATTENTION
    err = capsys.readouterr().err
    escaped = str(configs / name).encode("unicode_escape").decode()
    assert err.splitlines() == [
        f"error: {escaped}:3: job 'x': targets[0]: 'hubspot' is not a valid domain; write a "
        "domain like 'example.com' or a page URL like 'https://example.com/pricing'",
        f"error: {configs / 'ok.yaml'}:2: job 'x': id: the id is used 2 times ({escaped}:2 "
        f"and {configs / 'ok.yaml'}:2); ids name the output files, so each must be unique "
        "across the folder: none of these jobs will run",
    ]
    assert "\x1b" not in err and "\r" not in err
