"""``paxis skills validate|search|eval``: check a skills folder, try selection, measure it.

Every subcommand takes the skills folder as its first positional argument (``DIR``). The old
``--dir DIR`` spelling still works and prints a deprecation note. ``search`` and ``eval`` reuse
an index saved in a cache directory while the folder is unchanged
(:mod:`paxis_router.skills.cache`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from paxis_router.cli._output import emit, emit_json

if TYPE_CHECKING:
    from paxis_router.skills.library import SkillLibrary

_EXAMPLES = """\
examples:
  paxis skills validate skills/
  paxis skills validate skills/ --json
  paxis skills search skills/ "extract the invoice total as JSON"
  paxis skills search skills/ "tune this slow SQL query" --k 3 --json
  paxis skills eval skills/ queries.jsonl --json

DIR is a folder of skill folders, each holding a SKILL.md (any depth).
"""


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return value


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``paxis skills`` and its three subcommands."""
    formatter = argparse.RawDescriptionHelpFormatter
    parser = sub.add_parser(
        "skills",
        help="validate, search and evaluate Agent Skills folders",
        description="Validate, search and evaluate a folder of Agent Skills (SKILL.md).",
        epilog=_EXAMPLES,
        formatter_class=formatter,
    )
    commands = parser.add_subparsers(dest="skills_command", required=True, metavar="SUBCOMMAND")

    validate = commands.add_parser(
        "validate",
        help="check every SKILL.md under DIR",
        description="Check every SKILL.md under DIR: errors exit 1, warnings are listed.",
        epilog="examples:\n  paxis skills validate skills/\n  paxis skills validate skills/ --json",
        formatter_class=formatter,
    )
    validate.add_argument("dir", type=Path, metavar="DIR", help="folder of skill folders")
    validate.add_argument(
        "--json",
        action="store_true",
        help='print {"ok", "skills", "valid", "skills_with_warnings", "errors", "warnings"}',
    )
    validate.set_defaults(handler=_validate)

    search = commands.add_parser(
        "search",
        help="rank the skills of DIR for a task",
        description="Rank the skills of DIR for a task described in words.",
        epilog='examples:\n  paxis skills search skills/ "merge two CSV files"\n'
        '  paxis skills search skills/ "deploy to Kubernetes" --k 3 --json',
        formatter_class=formatter,
    )
    search.add_argument("dir_or_query", metavar="DIR", help="folder of skill folders")
    search.add_argument("query", metavar="QUERY", nargs="?", help="the task, in words (quoted)")
    search.add_argument(
        "--k", type=_positive_int, default=5, help="how many skills to list, 1 or more (default 5)"
    )
    search.add_argument(
        "--min-score",
        type=float,
        default=None,
        metavar="SCORE",
        help="drop matches scoring below SCORE, a number such as 2.5 (default: keep all)",
    )
    _library_options(search)
    search.set_defaults(handler=_search)

    evaluate = commands.add_parser(
        "eval",
        help="recall@1, recall@5 and MRR on labelled queries",
        description="Measure selection on labelled queries: recall@1, recall@5 and MRR.",
        epilog="examples:\n  paxis skills eval skills/ queries.jsonl\n"
        "  paxis skills eval skills/ queries.jsonl --no-body --json",
        formatter_class=formatter,
    )
    evaluate.add_argument("dir_or_queries", metavar="DIR", help="folder of skill folders")
    evaluate.add_argument(
        "queries",
        metavar="QUERIES",
        nargs="?",
        help='JSONL file, one {"query": <text>, "skill": <skill id>} per line',
    )
    _library_options(evaluate)
    evaluate.set_defaults(handler=_eval)


def _library_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dir",
        type=Path,
        default=None,
        dest="legacy_dir",
        metavar="DIR",
        help="deprecated: give DIR as the first argument instead",
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output (JSON)")
    parser.add_argument(
        "--rerank",
        action="store_true",
        help="rerank BM25's top 20 with the bundled MiniLM embedding (needs the [embed] extra)",
    )
    parser.add_argument(
        "--no-body", action="store_true", help="index name and description only (no body)"
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="stop at the first invalid SKILL.md (default: skip it with a warning naming it)",
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        metavar="PATH",
        help="where saved indexes live (default: $XDG_CACHE_HOME/paxis/skills or "
        "~/.cache/paxis/skills); an index is reused while DIR is unchanged",
    )
    parser.add_argument(
        "--no-cache",
        action="store_true",
        help="index DIR afresh and save nothing",
    )


def _two_positionals(args: argparse.Namespace, first: str, second: str, usage: str) -> None:
    """Read ``DIR SECOND`` (or the deprecated ``--dir DIR SECOND``) into args."""
    given = getattr(args, first)
    rest = getattr(args, second)
    if args.legacy_dir is not None:
        if rest is not None:
            _usage_error(f"give DIR once ({usage})")
        sys.stderr.write(f"note: --dir is deprecated; write `{usage}`\n")
        args.dir, value = args.legacy_dir, given
    else:
        if rest is None:
            _usage_error(f"missing an argument ({usage})")
        args.dir, value = Path(given), rest
    setattr(args, second, value)


def _usage_error(message: str) -> None:
    sys.stderr.write(f"paxis skills: error: {message}\n")
    raise SystemExit(2)


def _library(args: argparse.Namespace) -> SkillLibrary:
    from paxis_router.skills.bm25 import SkillIndex
    from paxis_router.skills.cache import load_or_build
    from paxis_router.skills.library import LIBRARY_FIELD_B, LIBRARY_FIELD_WEIGHTS, default_index
    from paxis_router.skills.rerank import EmbeddingReranker

    def name_and_description() -> SkillIndex:
        weights = {f: LIBRARY_FIELD_WEIGHTS[f] for f in ("name", "description")}
        return SkillIndex(field_weights=weights, field_b=LIBRARY_FIELD_B)

    library, _ = load_or_build(
        args.dir,
        cache_dir=args.cache_dir,
        strict=args.strict,
        make_index=name_and_description if args.no_body else default_index,
        reranker=EmbeddingReranker() if args.rerank else None,
        use_cache=not args.no_cache,
    )
    summary = library.load_summary()
    if summary:
        sys.stderr.write(f"note: {summary}; run `paxis skills validate {args.dir}`\n")
    return library


def _validate(args: argparse.Namespace) -> int:
    from paxis_router.errors import SkillError
    from paxis_router.skills.parse import find_skill_dirs, parse_skill_dir

    root: Path = args.dir
    errors: list[dict[str, str]] = []
    warnings: list[dict[str, str]] = []
    names: dict[str, list[str]] = {}
    count = 0
    for folder in find_skill_dirs(root):
        count += 1
        try:
            parsed = parse_skill_dir(folder, root=root)
        except SkillError as exc:
            errors.append({"path": str(folder / "SKILL.md"), "error": str(exc)})
            continue
        names.setdefault(parsed.skill.name, []).append(parsed.skill.id)
        warnings.extend({"id": parsed.skill.id, "warning": w} for w in parsed.warnings)
    for name, ids in sorted(names.items()):
        if len(ids) > 1:
            warnings.extend(
                {"id": i, "warning": f"name {name!r} is shared with {len(ids) - 1} other skill(s)"}
                for i in ids
            )
    ok = not errors
    with_warnings = len({w["id"] for w in warnings})
    if args.json:
        emit_json(
            {
                "ok": ok,
                "skills": count,
                "valid": count - len(errors),
                "skills_with_warnings": with_warnings,
                "errors": errors,
                "warnings": warnings,
            }
        )
    else:
        for error in errors:
            emit(f"ERROR {error['error']}")
        for warning in warnings:
            emit(f"warning {warning['id']}: {warning['warning']}")
        emit(
            f"{count} skill(s): {len(errors)} invalid, {with_warnings} with warnings "
            f"({len(warnings)} warning(s))"
        )
    return 0 if ok else 1


def _search(args: argparse.Namespace) -> int:
    _two_positionals(args, "dir_or_query", "query", "paxis skills search DIR QUERY")
    library = _library(args)
    matches = library.select(args.query, k=args.k, min_score=args.min_score)
    words = library.index.tokenizer.surface_forms(args.query)
    if args.json:
        emit_json(
            [
                {
                    "id": m.skill.id,
                    "score": round(m.score, 6),
                    "matched": [words.get(t, t) for t in m.matched_terms],
                }
                for m in matches
            ]
        )
        return 0
    if not matches:
        emit("no skill matched")
    for rank, match in enumerate(matches, 1):
        terms = ", ".join(words.get(t, t) for t in match.matched_terms)
        emit(f"{rank}. {match.skill.id}  {match.score:.3f}  [{terms}]")
    return 0


def _eval(args: argparse.Namespace) -> int:
    from paxis_router.skills.evaluate import evaluate, read_queries

    _two_positionals(args, "dir_or_queries", "queries", "paxis skills eval DIR QUERIES")
    queries = read_queries(Path(args.queries))
    result = evaluate(_library(args), queries)
    if args.json:
        emit_json(result.as_dict())
    else:
        emit(
            f"n={result.n}  recall@1={result.recall_at_1:.3f}  "
            f"recall@5={result.recall_at_5:.3f}  MRR={result.mrr:.3f}"
        )
    return 0
