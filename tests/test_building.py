"""Build, then reload: what the build writes is learned, not a trigger; its error lines are found."""

import sys

from sigreload import building


def test_error_lines_are_sphinx_mkdocs_and_compiler_errors_not_counts_or_exception_names():
    output = "\n".join([
        "reading sources... [100%] index",
        "/d/index.rst:5: ERROR: Unknown directive type \"foo\".",
        "ERROR    -  Config value 'nav': expected a list",
        "x.c:1:2: error: expected ';'",
        "build succeeded, 0 errors, 2 warnings.",
        "KeyError happened somewhere",
    ])
    assert building.error_lines(output) == [
        "/d/index.rst:5: ERROR: Unknown directive type \"foo\".",
        "ERROR    -  Config value 'nav': expected a list",
        "x.c:1:2: error: expected ';'",
    ]


def test_a_report_puts_the_error_lines_first_and_the_whole_log_below():
    result = building.Result(1, "a\nfile:1: error: bad\nb\n", ["file:1: error: bad"])
    assert result.report().startswith("file:1: error: bad\n\n--- the build's output ---\na\n")
    assert building.Result(1, "just a log").report() == "just a log"


def test_a_build_that_cannot_start_is_a_failed_result(tmp_path):
    result = building.run(["/nonexistent/tool"], str(tmp_path))
    assert not result.ok and result.errors == ["cannot run /nonexistent/tool: No such file or directory"]
    assert building.run([sys.executable, "-c", "print('ERROR: x')"], str(tmp_path)).errors == ["ERROR: x"]


def test_what_builds_write_is_theirs_and_edits_during_a_build_are_not():
    p = building.Products()
    assert p.written(["/d/_build/doctrees/env.pickle", "/d/_build/doctrees/index.doctree"], first=True) == []
    p.edited(["/d/index.rst"])  # you: /d holds sources now
    # The build rewrites its own files, adds a new one in its folder, and you save during it:
    assert p.written(["/d/_build/doctrees/env.pickle", "/d/_build/doctrees/new.doctree",
                      "/d/index.rst"]) == ["/d/index.rst"]
    # A file the build writes among your sources: taken for an edit once, the build's when written again.
    assert p.written(["/d/api.rst"]) == ["/d/api.rst"]
    assert p.written(["/d/api.rst"]) == []
    assert p.written(["/d/index.rst"]) == ["/d/index.rst"]  # yours, however often a build runs meanwhile
    assert p.written(["/d/index.rst"]) == ["/d/index.rst"]
    p.edited(["/d/api.rst"])  # you edited the generated file: yours from now on
    assert p.written(["/d/api.rst"]) == ["/d/api.rst"]
