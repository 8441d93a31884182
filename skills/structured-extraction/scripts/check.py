"""Check an extraction answer: one JSON object, no prose, optionally with required keys.

Usage: check.py [--require KEY ...] [ANSWER_FILE]   (the answer on stdin when no file is given)
Prints {"passed", "score", "reason"} as JSON; exit status 0 when the answer passes.
Runs with the standard library only (it runs inside paxis_router's sandbox).
"""

import json
import sys


def main(argv: list[str]) -> int:
    required: list[str] = []
    files: list[str] = []
    args = iter(argv)
    for arg in args:
        if arg == "--require":
            required.append(next(args, ""))
        else:
            files.append(arg)
    if files:
        with open(files[0], encoding="utf-8") as handle:
            text = handle.read()
    else:
        text = sys.stdin.read()
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        return report(False, 0.0, f"not a JSON document: {exc.msg} at line {exc.lineno}")
    if not isinstance(data, dict):
        return report(False, 0.0, f"expected one JSON object, got {type(data).__name__}")
    missing = [key for key in required if key not in data]
    if missing:
        share = 1 - len(missing) / len(required)
        return report(False, share, f"missing required keys: {', '.join(missing)}")
    return report(True, 1.0, f"a JSON object with {len(data)} key(s)")


def report(passed: bool, score: float, reason: str) -> int:
    print(json.dumps({"passed": passed, "score": round(score, 4), "reason": reason}))
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
