"""The README's FastAPI and pytest snippets are excerpts of the examples CI runs (line for line,
in order), so the routes and fixtures it shows are the ones that work. (sybil runs every Python
block of the README itself: see the root conftest.py.)"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
pytest_plugins = ["pytester"]


def _python_blocks(text: str) -> list[str]:
    blocks = text.split("```python\n")[1:]
    return [block.split("\n```", 1)[0] for block in blocks]


def _is_excerpt(snippet: str, source: str) -> bool:
    """Every non-blank line of ``snippet`` is a line of ``source``, in the same order."""
    lines = iter(source.splitlines())
    return all(
        any(line == candidate for candidate in lines) for line in snippet.splitlines() if line
    )


@pytest.mark.parametrize(
    ("marker", "example"),
    [
        ("@app.post(", "fastapi_app.py"),
        ("hubspot_smtp_pool: SmtpPool", "test_with_the_pytest_plugin.py"),
    ],
)
def test_readme_snippets_are_excerpts_of_the_examples(marker: str, example: str) -> None:
    readme = (ROOT / "README.md").read_text()
    (snippet,) = [block for block in _python_blocks(readme) if marker in block]
    assert _is_excerpt(snippet, (ROOT / "examples" / example).read_text())


def test_the_excerpt_check_notices_a_changed_route() -> None:
    source = (ROOT / "examples" / "fastapi_app.py").read_text()
    assert _is_excerpt('@app.post("/receipts")\n', source)
    assert not _is_excerpt('@app.post("/receipt")\n', source)
    assert not _is_excerpt('@app.post("/welcome")\n@app.post("/receipts")\n', source)


def test_a_shell_session_fails_on_a_failing_command_or_a_wrong_output(
    pytester: pytest.Pytester,
) -> None:
    # The root conftest.py runs a document's console blocks as a user's shell would.
    pytester.makeconftest((ROOT / "conftest.py").read_text())
    pytester.makefile(
        ".md",
        README="""
        ```console
        $ echo hello > greeting.txt
        $ cat greeting.txt
        hello
        ```

        ```console
        $ echo hello
        goodbye
        ```

        ```console
        $ true
        $ false   # a failing command fails the block
        $ echo never
        ```

        ```console
        $ make test   # never run: the suite itself
        ```
        """,
    )
    pytester.path.joinpath("pyproject.toml").touch()
    for command in (["git", "init", "-q"], ["git", "add", "."]):  # it copies the checkout
        subprocess.run(command, cwd=pytester.path, check=True, timeout=60)
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-rs", "README.md", timeout=300
    )
    result.assert_outcomes(passed=1, failed=2, skipped=1)
    result.stdout.fnmatch_lines(["*`echo hello` did not print ?'goodbye'?*"])
    result.stdout.fnmatch_lines(["*exit 1*"])
    result.stdout.fnmatch_lines(["*not run: `make test`: the test suite itself*"])
    assert "+ echo never" not in result.stdout.str()  # nothing runs after a failure


def test_a_shell_session_without_a_command_fails(pytester: pytest.Pytester) -> None:
    # A prompt mistyped (`$hubspot-tx`, `% hubspot-tx`) must not pass having run nothing.
    pytester.makeconftest((ROOT / "conftest.py").read_text())
    pytester.makefile(
        ".md",
        README="""
        ```console
        $hubspot-tx --no-such-option
        ```

        ```console
        % hubspot-tx --no-such-option
        ```
        """,
    )
    pytester.path.joinpath("pyproject.toml").touch()
    for command in (["git", "init", "-q"], ["git", "add", "."]):  # it copies the checkout
        subprocess.run(command, cwd=pytester.path, check=True, timeout=60)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "README.md", timeout=300)
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(["*no `$ ` command in this console block*"])


def test_a_shell_session_fails_when_what_it_started_with_and_fails(
    pytester: pytest.Pytester,
) -> None:
    # The README starts the worker with `&` and stops it with `kill %1`: it must exit cleanly.
    pytester.makeconftest((ROOT / "conftest.py").read_text())
    pytester.makefile(
        ".md",
        README="""
        ```console
        $ sleep 0.1 &
        $ echo started
        started
        ```

        ```console
        $ sh -c 'sleep 0.1; exit 3' &
        $ echo started
        ```

        ```console
        $ sleep 30 &
        $ kill %1   # killed by SIGTERM: not a clean stop
        ```
        """,
    )
    pytester.path.joinpath("pyproject.toml").touch()
    for command in (["git", "init", "-q"], ["git", "add", "."]):  # it copies the checkout
        subprocess.run(command, cwd=pytester.path, check=True, timeout=60)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "README.md", timeout=300)
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(["*exit 3*"])
    result.stdout.fnmatch_lines(["*exit 143*"])
