"""Mutation testing: do the tests catch what they claim to guard?

    .venv/bin/python bench/mutation.py [MODULE ...] [--max-children 2] [--tests FILE ...]
                                       [--keep] [--verbose] [--source CHECKOUT]

For each module (default: the core modules in ``MAPPING``) mutmut 3 changes the code one
small edit at a time (``<`` to ``<=``, ``and`` to ``or``, a string to ``"XX…XX"``, a call's
argument to ``None`` …) and runs the tests relevant to that module against every mutant.
A mutant the tests fail on is *killed*; one they pass on *survived*: a change in behaviour
nobody would notice. The script prints the score and the diff of every survivor.

Each run works in a fresh copy of the repository under the system's temp folder (the
working tree is never touched, several runs can go at once) and uses only the test files
mapped to the module, so a module takes minutes, not the hours the whole suite would.
MODULE is a path (``pipeline/text.py``), a dotted name (``pipeline.text``) or a short name
(``text``). Tests that use the ``state_url`` fixture run on PostgreSQL too when
``PIPELINE_TEST_POSTGRES`` is set, as in the ordinary test run.

Score = killed / all mutants. Killed includes mutmut's "timeout" (the mutant made a test
hang: it was noticed). Nothing is left out of the total: "no tests" (the mutant is in a
function none of the mapped tests calls) and "suspicious"/"segfault" count as not killed,
and are listed. A second figure leaves out the mutants listed in ``EQUIVALENT`` — edits
that cannot change behaviour, with the reason for each; an entry applies only while the
mutant's diff still contains its marker text, so a stale entry is reported, not trusted.

Hypothesis runs derandomised and without its example database or deadlines (a profile
loaded by a small pytest plugin written into the copy), so the same code and tests give
the same score every time, and the slower mutated code is never "killed" by a deadline.

Needs mutmut 3 (``.venv/bin/pip install mutmut``); keep ``--max-children`` at 1-2 on a
shared machine.
"""

from __future__ import annotations

import argparse
import codecs
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# Module -> the test files that guard it (globs, relative to the repository). A test file
# that does not exist yet is skipped, so a module's future test file can be listed now.
MAPPING: dict[str, tuple[str, ...]] = {
    "pipeline/ledger.py": ("tests/test_ledger*.py", "tests/test_posting.py"),
    "pipeline/tokens.py": ("tests/test_tokens*.py", "tests/test_subscribers.py"),
    "pipeline/triggers.py": ("tests/test_triggers*.py", "tests/test_schedules.py"),
    "pipeline/channels/compose.py": ("tests/test_compose*.py",),
    "pipeline/channels/mastodon_length.py": ("tests/test_mastodon_length.py",),
    "pipeline/text.py": ("tests/test_text*.py", "tests/test_urls.py"),
    "pipeline/sanitising.py": ("tests/test_text*.py", "tests/test_urls.py"),
    "pipeline/delivery.py": ("tests/test_delivery.py", "tests/test_posting.py"),
    "pipeline/corrections.py": ("tests/test_corrections.py", "tests/test_corrections_digest.py"),
}

# Mutants that cannot change behaviour: (mutant name, text its diff must contain, why).
# mutmut numbers mutants within a function, so an edit to the function renumbers them: the
# marker check then reports the entry as stale instead of excusing a different mutant.
_PERFORMANCE = (
    "same output: only how much of the text is normalised and segmented before the cut "
    "changes (the bounded prefix is a performance measure; a 8-million-character article "
    "still takes well under mutmut's timeout)"
)
_UTC_ANYWAY = (
    "the value is only compared with or converted to other aware datetimes, which compare "
    "by instant whatever their zone"
)
_ABANDONED_KEY = (
    "an abandoned row is settled at once and never sent or claimed again, so its job's key "
    "is read by nothing: Job.key is read only when a retry round claims a job again, and "
    "the settled callbacks read the job's stream, item and about"
)
_RESUMED_KEY = (
    "a resumed job holds no claim, so no retry round claims it again with Job.key, and the "
    "send it is given already carries the row's key"
)
_REFUSED_KEY = (
    "a refused row is failed at once and never sent, resumed or checked by hand (only "
    "uncertain rows are), so the key it is claimed with is read by nothing"
)
EQUIVALENT: dict[str, list[tuple[str, str, str]]] = {
    "pipeline/text.py": [
        (
            "pipeline.text.x__breakable__mutmut_5",
            'before == "XX XX"',
            'a space still counts through `after == " "` one position earlier, and the '
            "trailing space that cut keeps is popped before the ellipsis",
        ),
        *(
            (f"pipeline.text.x__leading_graphemes__mutmut_{n}", marker, _PERFORMANCE)
            for n, marker in (
                (3, "size = count - count // 8 + 16"),
                (5, "size = count + count // 9 + 16"),
                (6, "size = count + count // 8 + 17"),
                (9, "whole = size > len(text)"),
                (20, "normal[: count + 3]"),
                (24, "finditer(normal), None)"),
                (29, "finditer(normal), count + 3)"),
                (33, "== count + 3:"),
                (38, "size *= 3"),
            )
        ),
        (
            "pipeline.text.x_find_control_character__mutmut_10",
            'count("\\n", None, at)',
            "str.count treats a start of None as 0",
        ),
        (
            "pipeline.text.x_find_control_character__mutmut_20",
            'rfind("\\n", None, at)',
            "str.rfind treats a start of None as 0",
        ),
        *(
            (
                f"pipeline.text.x_html_to_text__mutmut_{n}",
                marker,
                "defence in depth: libxml2's HTML parser loads no DTD or external entity "
                "here, so nothing can reach the network either way",
            )
            for n, marker in (
                (5, "recover=True, no_network=None)"),
                (7, "HTMLParser(recover=True, )"),
                (9, "recover=True, no_network=False)"),
                (21, "recover=True, no_network=None\n"),
                (24, "target=collector, recover=True, )"),
                (26, "recover=True, no_network=False\n"),
            )
        ),
        *(
            (
                f"pipeline.text.x_html_to_text__mutmut_{n}",
                marker,
                "recover=True is lxml's default for HTMLParser",
            )
            for n, marker in ((6, "HTMLParser(no_network=True)"), (23, "collector, no_network"))
        ),
        (
            "pipeline.text.x_read_minutes__mutmut_4",
            "findall(text)), 1",
            "one CJK character more adds 230 to a numerator that words change in steps of "
            "500, and every rounding boundary (57,500 × odd) is a multiple of 500: never "
            "crossed",
        ),
        (
            "pipeline.text.x_excerpt__mutmut_13",
            '"XXXX".join(head)',
            "joined with an ASCII separator, a head is ASCII exactly when it was before",
        ),
        (
            "pipeline.text.x__one_line__mutmut_2",
            "done = None",
            "text[None:i] is text[0:i], and done is reassigned before any other use",
        ),
        (
            "pipeline.text.xǁ_TextCollectorǁ_edge__mutmut_27",
            "step >= 0",
            "step is only ever +1 (start) or -1 (end)",
        ),
    ],
    "pipeline/triggers.py": [
        *(
            (
                f"pipeline.triggers.x__fire_times__mutmut_{n}",
                "get_next_fire_time(fire, None)",
                "with a previous fire time every trigger (LocalTimeTrigger) ignores `now`: the "
                "next run is the first after the previous one",
            )
            for n in (10, 16)
        ),
        ("pipeline.triggers.x__instant__mutmut_1", ".astimezone(None)", _UTC_ANYWAY),
        *(
            (
                f"pipeline.triggers.x__parse__mutmut_{n}",
                marker,
                "exactly 5 parts were checked just before, and there are 5 fields",
            )
            for n, marker in ((16, "strict=None"), (19, "_FIELDS, )"), (20, "strict=False"))
        ),
        *(
            (
                f"pipeline.triggers.x__parse__mutmut_{n}",
                marker,
                "a day of month starting with '*' includes the 1st and a '*' month every "
                "month, so the never-runs check cannot fail where the mutant changes whether "
                "it is made",
            )
            for n, marker in ((38, "not parts[3].startswith"), (39, '"XX*XX"'))
        ),
        (
            "pipeline.triggers.x__parse__mutmut_58",
            "day in (0, 8)",
            "7 maps to 7 either way; 8 is out of range before this point",
        ),
        (
            "pipeline.triggers.x__parse_field__mutmut_50",
            "stop = 8",
            "the extra 8 is no ISO weekday, so it never matches a day",
        ),
        *(
            (
                f"pipeline.triggers.x_{function}__mutmut_{n}",
                'lstrip("XX0XX")',
                "only ASCII digits reach it, and stripping 'X' from them changes nothing",
            )
            for function, n in (("_parse_field", 63), ("_value", 6))
        ),
        *(
            (
                f"pipeline.triggers.x__value__mutmut_{n}",
                marker,
                "every field's maximum is below 100, so 3-digit, 4-digit and field.high + 2 "
                "values are all refused with the same 'out of range' message",
            )
            for n, marker in ((12, "len(digits) < 3"), (13, "len(digits) <= 4"), (15, "high + 2"))
        ),
        *(
            (
                f"pipeline.triggers.x__wall__mutmut_{n}",
                marker,
                "naive datetimes and times compare and hash ignoring fold, and _instant sets "
                "fold=0 before a wall time is read in a zone",
            )
            for n, marker in ((3, "replace(tzinfo=None, )"), (5, "fold=1"))
        ),
        (
            "pipeline.triggers.xǁLocalTimeTriggerǁget_next_fire_time__mutmut_15",
            "max(dt.timedelta(1),",
            "same result: the search starts a day early and skips what is not later than "
            "`after` (performance only; it may also be killed as a timeout)",
        ),
        *(
            (f"pipeline.triggers.xǁLocalTimeTriggerǁget_next_fire_time__mutmut_{n}", m, _UTC_ANYWAY)
            for n, m in ((3, "previous_fire_time.astimezone(None)"), (6, "now.astimezone(None)"))
        ),
    ],
    "pipeline/delivery.py": [
        *(
            (f"pipeline.delivery.xǁCourierǁabandon__mutmut_{n}", marker, _ABANDONED_KEY)
            for n, marker in (
                (4, "entry.item, None, _never"),
                (13, 'entry.key and ""'),
                (14, 'entry.key or "XXXX"'),
            )
        ),
        *(
            (f"pipeline.delivery.xǁCourierǁresume__mutmut_{n}", marker, _RESUMED_KEY)
            for n, marker in (
                (7, "entry.item, None, send"),
                (16, 'entry.key and ""'),
                (17, 'entry.key or "XXXX"'),
            )
        ),
        *(
            (f"pipeline.delivery.xǁCourierǁrefuse__mutmut_{n}", marker, _REFUSED_KEY)
            for n, marker in ((4, "take(stream, item, None, _never"), (12, '"XXXX", _never'))
        ),
        *(
            (
                f"pipeline.delivery.xǁCourierǁfinish__mutmut_{n}",
                marker,
                "the same entry: every row of the stream is read and the job's picked from "
                "them (a slower query, the same result)",
            )
            for n, marker in ((22, "entries(job.stream, None)"), (24, "entries(job.stream, )"))
        ),
    ],
    "pipeline/corrections.py": [
        (
            "pipeline.corrections.x_correction_item__mutmut_1",
            'version: str = "XXXX"',
            "the default reaches only the delete branch, which does not use it: every update "
            "item is made with its version",
        ),
        (
            "pipeline.corrections.x_fingerprint__mutmut_7",
            'encode("UTF-8")',
            "Python's codec names are case-insensitive: the same encoding",
        ),
        *(
            (
                f"pipeline.corrections.xǁCorrectorǁ_live__mutmut_{n}",
                marker,
                "the same articles found: the chunks only overlap (more or larger queries, "
                "performance only)",
            )
            for n, marker in ((14, "range(0, len(ids), )"), (19, "start + 501]"))
        ),
        *(
            (
                f"pipeline.corrections.xǁCorrectorǁdue__mutmut_{n}",
                marker,
                "the early return is a shortcut: with both policies ignore, every later branch "
                "checks its policy and finds (and drops) nothing, so the result is [] either way",
            )
            for n, marker in (
                (6, 'updates == "XXignoreXX" and'),
                (7, 'updates == "IGNORE" and'),
                (9, 'deletes == "XXignoreXX"'),
                (10, 'deletes == "IGNORE"'),
            )
        ),
        (
            "pipeline.corrections.xǁCorrectorǁdue__mutmut_99",
            '#{UPDATE}:") or entry.item != item',
            "drop() moves only pending rows, and here (a sent post, no delete row) the only "
            "rows of the article that can be pending are its updates, which the left side "
            "matches already: a sent post row never becomes pending again",
        ),
        (
            "pipeline.corrections.xǁCorrectorǁrun__mutmut_23",
            "key(None)",
            "the fallback is never evaluated: every correction row is claimed by run() with "
            "key(item), never empty",
        ),
    ],
    "pipeline/channels/compose.py": [
        (
            "pipeline.channels.compose.x_fit__mutmut_18",
            'or "XXXX")',
            "an empty summary or title is only searched when the post is already too long "
            "without it; any text in its place makes the post longer, so nothing can fit",
        ),
        (
            "pipeline.channels.compose.x_hashtag__mutmut_7",
            r"\p{l}\p{n}",
            "the regex module reads Unicode property names case-insensitively",
        ),
    ],
}

# Lines mutmut must leave alone (regex on the source line, why): where its trampoline, not
# the mutation, would break them, or a mutant would act outside the copy. They make no
# mutants, so they are in no total.
NOT_MUTATED: dict[str, list[tuple[str, str]]] = {
    "pipeline/ledger.py": [
        (
            r"os\.kill\(.*, 0\)",
            "owner_is_gone's liveness probe: mutating signal 0 to 1 sends a real SIGHUP to "
            "whichever live process a test names (the test run itself; as root, any pid)",
        ),
    ],
    "pipeline/text.py": [
        (
            r"self\._edge\(tag, 1\)",
            "_TextCollector.start: lxml reads start()'s signature to decide whether to pass "
            "nsmap, and a trampolined start(*args) is given 3 arguments it cannot take",
        ),
    ],
}

# What the copy needs: the package, the tests and what the tests read from the repository.
COPY = (
    *("pipeline", "tests", "config", "templates", "examples"),
    *("schedules.yaml", "README.md", "pyproject.toml"),  # test_schedules reads README.md
)

_PROGRESS = re.compile(r"^\W*\d+/\d+ ")  # mutmut's "⠧ 12/268  🎉 10 …" lines
KILLED = {"killed", "timeout", "caught by type check"}

PLUGIN = '''\
"""Loaded by bench/mutation.py with -p: reproducible Hypothesis runs under mutation."""

from hypothesis import settings

settings.register_profile("mutation", derandomize=True, database=None, deadline=None)
settings.load_profile("mutation")
'''


@dataclass
class Result:
    module: str
    tests: list[str]
    statuses: dict[str, str] = field(default_factory=dict)  # mutant name -> mutmut status
    diffs: dict[str, str] = field(default_factory=dict)
    equivalent: dict[str, str] = field(default_factory=dict)  # mutant name -> why
    stale: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def total(self) -> int:
        return len(self.statuses)

    @property
    def killed(self) -> int:
        return sum(status in KILLED for status in self.statuses.values())

    def named(self, *statuses: str) -> list[str]:
        return sorted(name for name, status in self.statuses.items() if status in statuses)


def module_path(name: str) -> str:
    """``pipeline/text.py`` from ``text``, ``pipeline.text`` or the path itself."""
    candidates = [name, name.replace(".", "/") + ".py", f"pipeline/{name.replace('.', '/')}.py"]
    candidates += [known for known in MAPPING if Path(known).stem == name]
    if name.endswith(".py"):
        candidates = [name]
    for candidate in candidates:
        if (REPO / candidate).is_file():
            return Path(candidate).as_posix()
    known = ", ".join(MAPPING)
    raise SystemExit(f"mutation.py: no module {name!r} in {REPO} — give a path like {known}")


def test_files(module: str, extra: list[str]) -> list[str]:
    if module not in MAPPING and not extra:
        raise SystemExit(
            f"mutation.py: no tests are mapped to {module}; add it to MAPPING in "
            "bench/mutation.py or name the test files with --tests"
        )
    found: list[str] = []
    for pattern in (*MAPPING.get(module, ()), *extra):
        for path in sorted(REPO.glob(pattern)):
            relative = path.relative_to(REPO).as_posix()
            if relative not in found:
                found.append(relative)
    if not found:
        raise SystemExit(f"mutation.py: none of the test files for {module} exist")
    return found


def mutmut_command() -> list[str]:
    try:
        import mutmut
    except ImportError:
        raise SystemExit(
            "mutation.py: mutmut is not installed in this environment — install it with "
            f"`{Path(sys.executable).parent / 'pip'} install mutmut` (version 3)"
        ) from None
    version = getattr(mutmut, "__version__", "3")
    if not str(version).startswith("3"):
        raise SystemExit(f"mutation.py: needs mutmut 3, found {version}: pip install 'mutmut>=3'")
    return [sys.executable, "-c", "import sys; from mutmut.__main__ import cli; sys.exit(cli())"]


def make_copy(module: str, tests: list[str]) -> Path:
    """A throw-away copy of the repository, configured to mutate ``module`` only."""
    stem = module.removesuffix(".py").replace("/", "-")
    root = Path(tempfile.mkdtemp(prefix=f"mutation-{stem}-"))
    ignore = shutil.ignore_patterns("__pycache__", ".pytest_cache", ".hypothesis", "mutants")
    for name in COPY:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, root / name, ignore=ignore)
        elif source.is_file():
            shutil.copy2(source, root / name)
    if "[tool.mutmut]" in (root / "pyproject.toml").read_text(encoding="utf-8"):
        raise SystemExit("mutation.py: pyproject.toml has [tool.mutmut]; this script sets it")
    (root / "mutation_plugin.py").write_text(PLUGIN, encoding="utf-8")
    also_copy = [name for name in COPY if name not in ("pipeline", "tests", "pyproject.toml")]
    lines = [
        "[mutmut]",
        "source_paths = pipeline",
        f"only_mutate = {module}",
        "also_copy =",
        *(f"    {name}" for name in [*also_copy, "mutation_plugin.py"]),
        "pytest_add_cli_args_test_selection =",
        *(f"    {test}" for test in tests),
        "pytest_add_cli_args =",
        *(f"    {arg}" for arg in ("-p", "mutation_plugin", "-p", "no:cacheprovider")),
        "use_git_change_detection = false",
        # A mutant is stopped as "timeout" (a kill: it hung) after this many times the CPU
        # time its tests take unmutated (mutmut's default of 15 spends minutes per loop).
        "timeout_multiplier = 5",
    ]
    patterns = [pattern for pattern, _ in NOT_MUTATED.get(module, [])]
    if patterns:
        lines += ["do_not_mutate_patterns =", *(f"    {pattern}" for pattern in patterns)]
    (root / "setup.cfg").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def run_mutmut(root: Path, max_children: int, verbose: bool) -> float:
    log_path = root / "mutmut-run.log"
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "NO_COLOR": "1"}
    command = [*mutmut_command(), "run", "--max-children", str(max_children)]
    started = time.monotonic()
    with open(log_path, "w", encoding="utf-8") as log:
        process = subprocess.Popen(
            command, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        assert process.stdout is not None
        last, decoder = 0.0, codecs.getincrementaldecoder("utf-8")("replace")
        for raw in iter(lambda: process.stdout.read1(4096), b""):
            chunk = decoder.decode(raw)
            log.write(chunk)
            if verbose:
                sys.stdout.write(chunk)
                sys.stdout.flush()
            elif time.monotonic() - last > 30:
                progress = [p for p in re.split(r"[\r\n]", chunk) if _PROGRESS.search(p)]
                if progress:
                    print(f"    {progress[-1].strip()[:100]}", flush=True)
                    last = time.monotonic()
        code = process.wait()
    if code != 0:
        tail = log_path.read_text(encoding="utf-8").replace("\r", "\n").splitlines()[-40:]
        print("\n".join(tail))
        raise SystemExit(f"mutation.py: mutmut failed (exit {code}); full log: {log_path}")
    return time.monotonic() - started


def read_results(root: Path, module: str, tests: list[str]) -> Result:
    result = Result(module, tests)
    listing = subprocess.run(
        [*mutmut_command(), "results", "--all", "true"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for line in listing.splitlines():
        name, _, status = line.strip().rpartition(": ")
        if name:
            result.statuses[name] = status
    for name, status in result.statuses.items():
        if status not in KILLED:
            shown = subprocess.run(
                [*mutmut_command(), "show", name], cwd=root, capture_output=True, text=True
            )
            result.diffs[name] = shown.stdout.strip()
    for name, marker, why in EQUIVALENT.get(module, []):
        if result.statuses.get(name) in KILLED:
            continue
        if name in result.diffs and marker in result.diffs[name]:
            result.equivalent[name] = why
        else:
            result.stale.append(name)
    return result


def percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f} %" if whole else "n/a"


def report(result: Result) -> None:
    print(f"\n=== {result.module}  ({result.seconds / 60:.1f} min)")
    print(f"tests: {' '.join(result.tests)}")
    counts: dict[str, int] = {}
    for status in result.statuses.values():
        counts[status] = counts.get(status, 0) + 1
    print("mutants: " + ", ".join(f"{n} {status}" for status, n in sorted(counts.items())))
    score = percent(result.killed, result.total)
    print(f"score: {result.killed} killed / {result.total} = {score}")
    if result.equivalent:
        rest = result.total - len(result.equivalent)
        print(
            f"score without the {len(result.equivalent)} documented equivalent mutants: "
            f"{result.killed} / {rest} = {percent(result.killed, rest)}"
        )
    for pattern, why in NOT_MUTATED.get(result.module, []):
        print(f"not mutated: lines matching {pattern!r} — {why}")
    if result.named("no tests"):
        print(
            "note: 'no tests' mutants are in functions none of the mapped tests calls; they "
            "count as not killed (map a test file that exercises them, or add a test)"
        )
    for name in result.stale:
        print(f"note: EQUIVALENT entry {name} no longer matches its mutant; re-check it")
    not_killed = result.named(*set(result.statuses.values()) - KILLED)
    unexplained = [name for name in not_killed if name not in result.equivalent]
    if unexplained:
        print(f"\n{len(unexplained)} mutants not killed (each a change no test noticed):")
    for name in unexplained:
        print(f"\n--- {name}  [{result.statuses[name]}]")
        diff = result.diffs.get(name, "")
        print(textwrap.indent("\n".join(diff.splitlines()[1:]), "  "))
    if result.equivalent:
        print(f"\n{len(result.equivalent)} documented equivalent mutants (not killable):")
    for name, why in sorted(result.equivalent.items()):
        added = [
            line[1:].strip()
            for line in result.diffs[name].splitlines()
            if line.startswith("+") and not line.startswith("+++")
        ]
        print(f"  {name}: `{' '.join(added)[:90]}` — {why}")


def main(argv: list[str] | None = None) -> int:
    global REPO
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="*", help="modules to mutate (default: all mapped)")
    parser.add_argument("--max-children", type=int, default=2, help="parallel mutants (2)")
    parser.add_argument("--tests", nargs="+", default=[], help="extra test files (globs)")
    parser.add_argument("--keep", action="store_true", help="keep the copy (for mutmut browse)")
    parser.add_argument("--verbose", action="store_true", help="show mutmut's own output")
    parser.add_argument(
        "--source",
        type=Path,
        default=REPO,
        help="the checkout to copy and test (default: the one holding this script), "
        "e.g. a `git worktree` of an older commit for a before/after comparison",
    )
    args = parser.parse_args(argv)
    REPO = args.source.resolve()
    mutmut_command()
    modules = [module_path(m) for m in args.modules] or list(MAPPING)
    postgres = "on" if os.environ.get("PIPELINE_TEST_POSTGRES") else "off (SQLite only)"
    print(f"mutation testing {', '.join(modules)}; PostgreSQL {postgres}")
    results = []
    for module in modules:
        tests = test_files(module, args.tests)
        root = make_copy(module, tests)
        print(f"\n{module}: mutmut in {root}", flush=True)
        seconds = run_mutmut(root, args.max_children, args.verbose)  # keeps the copy if it fails
        result = read_results(root, module, tests)
        result.seconds = seconds
        if args.keep:
            print(f"kept {root}: `cd {root} && mutmut browse`")
        else:
            shutil.rmtree(root, ignore_errors=True)
        report(result)
        results.append(result)
    if len(results) > 1:
        print("\n=== summary")
        for r in results:
            print(f"{r.module:32} {r.killed:4} / {r.total:4} = {percent(r.killed, r.total):>7}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
