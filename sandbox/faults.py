"""Faults on demand, asked for by keywords in a prompt, e.g. "a cat [kie:402]".

[kie:402] [kie:401] [kie:422] ...  createTask answers that code (HTTP 200, code in the body)
[kie:500x2]      the first 2 createTask calls for this prompt answer 500, then it succeeds
[kie:429x3]      the same with 429 and a Retry-After header
[kie:http500x1]  an HTTP 500 with an HTML body (no JSON envelope)
[kie:hang]       createTask answers only after SANDBOX_HANG_SECONDS (past a client timeout)
[kie:malformed]  createTask answers HTTP 200 with a body that is not JSON
[kie:fail]       the task ends in state "fail" with a failCode/failMsg
[kie:slow=5]     the task takes 5 s to generate
[kie:stuck]      the task stays "generating" forever
[kie:nocallback] no callback is sent for the task
[kie:checkfail500x2]  the first 2 recordInfo calls for the task answer 500
[kie:state=rendering] while generating, the task reports a state soraq does not know
[kie:lostreply]  createTask makes the task (its callback will come) but answers garbage
[kie:badvideo]   the result file is not a playable video
[kie:size=5MB]   the result file is padded to that size
[kie:expire=5]   the result file's link 404s 5 s after the task finished (download-url
                 still hands out a fresh link)
[kie:purged]     the result file is gone for good, download-url included
[kie:inside]     the result URL points inside a private network (http://10.0.0.7/…)
[kie:slowfile=4] the result file takes 4 s to download
[kie:lag=3]      the callback comes on time, but the read endpoints show the result 3 s later
[kie:charge=consumeCredits]  the task reports its charge as consumeCredits (creditsConsumed,
                 as Kie's docs show it, otherwise), in recordInfo and the callback
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_KEYWORD = re.compile(r"\[kie:([a-z]*)(\d*)(?:x(\d+))?(?:=([\w.]+))?\]")


@dataclass(frozen=True)
class Fault:
    name: str  # "code", "http", "hang", "malformed", "fail", "slow", "stuck", "nocallback", ...
    code: int | None = None
    times: int | None = None  # None: every time
    value: float | None = None
    text: str | None = None  # a word given with `=` that is not a number


def parse(prompt: str) -> list[Fault]:
    return [
        Fault(
            name=name or "code",
            code=int(number) if number else None,
            times=int(times) if times else None,
            value=_number(value),
            text=value if value and _number(value) is None else None,
        )
        for name, number, times, value in _KEYWORD.findall(prompt)
        if name or number
    ]


def _number(value: str) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None
