"""The pytest plugin in a fresh project: pytest-asyncio's default (strict) mode, and a missing
dependency that fails the tests asking for it (never a silent skip)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

EXAMPLE = Path(__file__).parent.parent / "examples" / "test_with_the_pytest_plugin.py"


def test_the_example_passes_in_strict_mode_in_a_new_project(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\n")  # nothing set: asyncio_mode is pytest-asyncio's "strict"
    pytester.makepyfile(test_email=EXAMPLE.read_text())
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=300)
    result.assert_outcomes(passed=8)
    result.stdout.no_fnmatch_line("*strict mode*")


def test_the_readme_minimal_setup_runs_in_auto_mode(pytester: pytest.Pytester) -> None:
    # The README's pyproject.toml, as it is.
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    setup = readme.split("```toml\n", 1)[1].split("```", 1)[0]
    assert 'asyncio_mode = "auto"' in setup
    pytester.makepyprojecttoml(setup)
    pytester.makepyfile(
        test_auto="""
        async def test_unmarked(hubspot_sandbox, hubspot_smtp_pool):
            from email.message import EmailMessage
            message = EmailMessage()
            message["From"], message["To"], message["Subject"] = "a@x.org", "b@y.org", "hi"
            message.set_content("x")
            assert (await hubspot_smtp_pool.send(message)).ok
            assert [m.subject for m in hubspot_sandbox.outbox()] == ["hi"]
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=300)
    result.assert_outcomes(passed=1)
    assert "PytestDeprecationWarning" not in result.stderr.str()  # a quiet first run


def test_a_test_in_a_wider_loop_is_told_which_fixture_to_use(pytester: pytest.Pytester) -> None:
    # The per-test fixtures serve the sandbox on the function-scoped loop: a test running in a
    # session-scoped loop would hang until the client's timeout (30 s), then fail on a timeout.
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(
        test_session_loop="""
        import pytest

        @pytest.mark.asyncio(loop_scope="session")
        async def test_client(hubspot_client):
            await hubspot_client.smtp_tokens.create(campaign_name="x")

        @pytest.mark.asyncio(loop_scope="session")
        async def test_shared(hubspot_shared_sandbox):
            async with hubspot_shared_sandbox.client(https=True) as hs:
                await hs.smtp_tokens.create(campaign_name="y")
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rA", timeout=120)
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at setup of test_client*",
            "hubspot_sandbox *session-scoped*hubspot_shared_sandbox*",
        ]
    )
    assert "Timeout" not in result.stdout.str()


def test_a_missing_sandbox_extra_fails_the_tests_that_need_it(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\n")
    # trustme (of the sandbox extra) cannot be imported in this project.
    pytester.makepyfile(trustme="raise ImportError(\"No module named 'trustme'\")")
    pytester.makepyfile(
        test_missing="""
        import pytest

        @pytest.mark.asyncio
        async def test_async(hubspot_sandbox):
            pass

        def test_shared(hubspot_shared_sandbox):
            pass

        def test_unrelated():
            pass
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rA", timeout=120)
    result.assert_outcomes(passed=1, errors=2)
    assert result.ret != 0
    needs = "fixtures need the sandbox extra: pip install 'hubspot-tx[pytest]'"
    # One error per fixture-using test, in the ERRORS section (pytest 9.2 repeats the
    # message in the short summary too, so count the report lines that start with it).
    reports = [
        line for line in result.stdout.lines if line.startswith("the hubspot-tx") and needs in line
    ]
    assert len(reports) == 2
    result.stdout.no_fnmatch_line("*SKIP*")


def test_a_missing_pytest_asyncio_fails_the_tests_that_need_it(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\n")
    pytester.makepyfile(pytest_asyncio="raise ImportError(\"No module named 'pytest_asyncio'\")")
    pytester.makepyfile(
        test_missing="""
        def test_pool(hubspot_smtp_pool):
            pass

        def test_unrelated():
            pass
        """
    )
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-p", "no:asyncio", "-rA", timeout=120
    )
    result.assert_outcomes(passed=1, errors=1)
    needs = "fixtures need pytest-asyncio: pip install 'hubspot-tx[pytest]'"
    assert needs in result.stdout.str()
