#!/usr/bin/python3
"""Check a Chrome trace-event JSON file as corral writes it (src/runtime/trace.c).

  /usr/bin/python3 tests/runtime/check_trace.py FILE [--min-slices N] [--slices N]
      [--threads N] [--name NAME]... [--reason REASON]...

Checks: the file is valid JSON, an object whose "traceEvents" is a list; every event has a
"ph", an integer "pid" and "tid"; every event but metadata ("M") has a numeric "ts" that
never goes back on its tid (in file order); every "B" is ended by an "E" on the same tid and
no "E" comes without its "B"; "X" events have a "dur" >= 0; every tid with events is named by
a "thread_name" metadata event. Options add expectations: at least or exactly N slices
(B/E pairs and X events), exactly N named threads, a slice or instant named NAME, a slice
ended for REASON (an "E" whose args.reason is REASON: why the task parked).
Prints one summary line and exits 0, or prints the first problem and exits 1.
"""
import argparse
import json
import sys


def fail(msg):
    print("check_trace: " + msg)
    sys.exit(1)


def check(events):
    last_ts = {}
    open_slices = {}
    named = set()
    used = set()
    names = set()
    reasons = set()
    slices = 0
    for i, ev in enumerate(events):
        where = "event %d (%s)" % (i, json.dumps(ev)[:200])
        if not isinstance(ev, dict) or not isinstance(ev.get("ph"), str):
            fail(where + ": not an object with a ph")
        ph = ev["ph"]
        for key in ("pid", "tid"):
            if not isinstance(ev.get(key), int):
                fail(where + ": no integer " + key)
        tid = (ev["pid"], ev["tid"])
        if ph == "M":
            if ev.get("name") == "thread_name":
                named.add(tid)
            continue
        used.add(tid)
        ts = ev.get("ts")
        if not isinstance(ts, (int, float)) or isinstance(ts, bool):
            fail(where + ": no numeric ts")
        if ts < last_ts.get(tid, ts):
            fail(where + ": ts %r goes back from %r on tid %r" % (ts, last_ts[tid], tid))
        last_ts[tid] = ts
        if "name" in ev:
            names.add(ev["name"])
        if ph == "B":
            open_slices.setdefault(tid, []).append(ev)
        elif ph == "E":
            if not open_slices.get(tid):
                fail(where + ": E without a B on tid %r" % (tid,))
            open_slices[tid].pop()
            slices += 1
            if isinstance(ev.get("args"), dict) and "reason" in ev["args"]:
                reasons.add(ev["args"]["reason"])
        elif ph == "X":
            dur = ev.get("dur")
            if not isinstance(dur, (int, float)) or dur < 0:
                fail(where + ": X without a dur >= 0")
            slices += 1
    for tid, stack in open_slices.items():
        if stack:
            fail("B never ended on tid %r: %s" % (tid, json.dumps(stack[-1])[:200]))
    unnamed = used - named
    if unnamed:
        fail("tids without a thread_name: %r" % sorted(unnamed))
    return slices, named, names, reasons


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("file")
    ap.add_argument("--min-slices", type=int)
    ap.add_argument("--slices", type=int)
    ap.add_argument("--threads", type=int)
    ap.add_argument("--name", action="append", default=[])
    ap.add_argument("--reason", action="append", default=[])
    args = ap.parse_args()
    try:
        with open(args.file, encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, ValueError) as e:
        fail("%s: not valid JSON: %s" % (args.file, e))
    if not isinstance(doc, dict) or not isinstance(doc.get("traceEvents"), list):
        fail("not an object with a traceEvents list")
    events = doc["traceEvents"]
    slices, named, names, reasons = check(events)
    if args.min_slices is not None and slices < args.min_slices:
        fail("%d slices, fewer than %d" % (slices, args.min_slices))
    if args.slices is not None and slices != args.slices:
        fail("%d slices, not %d" % (slices, args.slices))
    if args.threads is not None and len(named) != args.threads:
        fail("%d named threads, not %d" % (len(named), args.threads))
    for name in args.name:
        if name not in names:
            fail("no event named %r" % name)
    for reason in args.reason:
        if reason not in reasons:
            fail("no slice ended for %r (reasons: %s)" % (reason, ", ".join(sorted(reasons))))
    print("check_trace: ok: %d events, %d slices, %d threads" % (len(events), slices, len(named)))


if __name__ == "__main__":
    main()
