"""``paxis skills validate|search|eval``: check a skills folder, try selection, measure it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from paxis_router.cli._output import emit, emit_json

if TYPE_CHECKING:
    import argparse

    from paxis_router.skills.library import SkillLibrary


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``paxis skills`` and its three subcommands."""
    parser = sub.add_parser("skills", help="validate, search and evaluate Agent Skills folders")
    commands = parser.add_subparsers(dest="skills_command", required=True, metavar="SUBCOMMAND")

    validate = commands.add_parser("validate", help="check every SKILL.md under DIR")
    validate.add_argument("dir", type=Path, help="folder of skill folders")
    validate.add_argument("--json", action="store_true", help="machine-readable output")
    validate.set_defaults(handler=_validate)

    search = commands.add_parser("search", help="rank the skills of --dir for a task")
    search.add_argument("query", help="the task, in words")
    _library_options(search)
    search.add_argument("--k", type=int, default=5, help="how many skills (default 5)")
    search.add_argument("--min-score", type=float, default=None, help="drop weaker matches")
    search.set_defaults(handler=_search)

    evaluate = commands.add_parser("eval", help="recall@1, recall@5 and MRR on labelled queries")
    evaluate.add_argument("queries", type=Path, help='JSONL of {"query": ..., "skill": <id>}')
    _library_options(evaluate)
    evaluate.set_defaults(handler=_eval)


def _library_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dir", type=Path, required=True, help="folder of skill folders")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument(
        "--rerank",
        action="store_true",
        help="rerank BM25's top 20 with the bundled MiniLM embedding (extra [embed])",
    )
    parser.add_argument(
        "--no-body", action="store_true", help="index name and description only (no body)"
    )


def _library(args: argparse.Namespace) -> SkillLibrary:
    from paxis_router.skills.bm25 import SkillIndex
    from paxis_router.skills.library import LIBRARY_FIELD_B, LIBRARY_FIELD_WEIGHTS, SkillLibrary
    from paxis_router.skills.rerank import EmbeddingReranker

    index = None
    if args.no_body:
        weights = {f: LIBRARY_FIELD_WEIGHTS[f] for f in ("name", "description")}
        index = SkillIndex(field_weights=weights, field_b=LIBRARY_FIELD_B)
    reranker = EmbeddingReranker() if args.rerank else None
    return SkillLibrary.from_dir(args.dir, index=index, reranker=reranker)


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
    if args.json:
        emit_json(
            {
                "ok": ok,
                "skills": count,
                "valid": count - len(errors),
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
            f"{count} skill(s), {len(errors)} error(s), {len(warnings)} warning(s) "
            f"in {len({w['id'] for w in warnings})} skill(s)"
        )
    return 0 if ok else 1


def _search(args: argparse.Namespace) -> int:
    library = _library(args)
    matches = library.select(args.query, k=args.k, min_score=args.min_score)
    if args.json:
        emit_json([{"id": m.skill.id, "score": round(m.score, 6)} for m in matches])
        return 0
    if not matches:
        emit("no skill matched")
    for rank, match in enumerate(matches, 1):
        terms = ", ".join(match.matched_terms)
        emit(f"{rank}. {match.skill.id}  {match.score:.3f}  [{terms}]")
    return 0


def _eval(args: argparse.Namespace) -> int:
    from paxis_router.skills.evaluate import evaluate, read_queries

    queries = read_queries(args.queries)
    result = evaluate(_library(args), queries)
    if args.json:
        emit_json(result.as_dict())
    else:
        emit(
            f"n={result.n}  recall@1={result.recall_at_1:.3f}  "
            f"recall@5={result.recall_at_5:.3f}  MRR={result.mrr:.3f}"
        )
    return 0
