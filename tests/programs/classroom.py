"""A class of submissions for `netbed grade`, made from the test programs: some right, some with the book's bugs,
some that cannot be judged. Used by the grading test and bench/bench_grade.py.

    make_class(folder, n) -> {submission: what its normal-termination verdict must be, and a word of the reason}
"""

from __future__ import annotations

import shutil
from pathlib import Path

HERE = Path(__file__).resolve().parent

# kind -> (server source, client source, expected verdict, a word the reason must hold)
KINDS = {
    "right": ("serv_fork_waitpid.c", "cli_lines.c", "passed", ""),
    "noreap": ("serv_fork_noreap.c", "cli_lines.c", "failed", "zombie"),
    "buffered": ("serv_fork_waitpid.c", "cli_buffered.c", "not judged", "printed nothing"),
    "broken": ("int main( {", None, "not judged", "does not compile"),
    "empty": (None, None, "not judged", "nothing to run"),
}
MIX = ("right", "noreap", "right", "buffered", "right", "noreap", "broken", "right", "empty", "right")


def make_class(folder: Path, n: int = 20) -> dict[str, tuple[str, str]]:
    """n submissions in folder/student-NN, cycling through MIX; what each must get in normal-termination."""
    expected = {}
    for i in range(n):
        kind = MIX[i % len(MIX)]
        server, client, verdict, word = KINDS[kind]
        sub = folder / f"student-{i + 1:02d}-{kind}"
        sub.mkdir(parents=True)
        if server and server.endswith(".c"):
            shutil.copy(HERE / server, sub / "server.c")
        elif server:
            (sub / "server.c").write_text(server)
        if client:
            shutil.copy(HERE / client, sub / "client.c")
        if kind == "empty":
            (sub / "README.txt").write_text("I ran out of time\n")
        expected[sub.name] = (verdict, word)
    return expected
