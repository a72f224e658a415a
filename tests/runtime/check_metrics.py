#!/usr/bin/python3
"""Check corral's Prometheus text (crl_metrics_text, GET /metrics) with a real consumer:
python3-prometheus-client's text parser, the one its users' tools share the format with.

usage: check_metrics.py METRICS_FILE CORES [EXPECTED_FILE]

METRICS_FILE holds the text. Every family must be a counter named corral_*_total or a gauge
named corral_*, carry help text, and have one sample per core (labels core="0".."CORES-1"),
times the values of its second label for the per-kind counters; every value is a whole number
at or above 0. EXPECTED_FILE, if given, has lines "NAME LABEL=VALUE,... NUMBER" (a sample and
its value as the C side read them from crl_stats_core); each must be in the text, equal.
Exits 0 when all holds, else 1 with what did not."""
import sys

from prometheus_client.parser import text_string_to_metric_families

GAUGES = {"corral_tasks_live", "corral_runq_high", "corral_conns_live"}


def fail(msg):
    print("check_metrics: " + msg, file=sys.stderr)
    sys.exit(1)


def check_family(fam, cores, samples):
    """One family's shape; its samples go into samples[(name, labels)] = value."""
    if not fam.name.startswith("corral_"):
        fail("family %s: not corral_*" % fam.name)
    want = "gauge" if fam.name in GAUGES else "counter"
    if fam.type != want:
        fail("family %s: type %s, not %s" % (fam.name, fam.type, want))
    if not fam.documentation:
        fail("family %s: no help text" % fam.name)
    per_core = {}
    for s in fam.samples:
        if want == "counter" and s.name != fam.name + "_total":
            fail("family %s: sample %s is not NAME_total" % (fam.name, s.name))
        if want == "gauge" and s.name != fam.name:
            fail("family %s: sample %s" % (fam.name, s.name))
        core = s.labels.get("core")
        if core is None or not core.isdigit() or int(core) >= cores:
            fail("%s%s: bad core label" % (s.name, s.labels))
        if s.value < 0 or s.value != int(s.value):
            fail("%s%s: value %r is not a count" % (s.name, s.labels, s.value))
        others = tuple(sorted((k, v) for k, v in s.labels.items() if k != "core"))
        per_core.setdefault(others, set()).add(int(core))
        key = (s.name, tuple(sorted(s.labels.items())))
        if key in samples:
            fail("%s%s: twice" % (s.name, s.labels))
        samples[key] = int(s.value)
    for others, seen in per_core.items():
        if seen != set(range(cores)):
            fail("family %s%s: cores %s, not 0..%d" % (fam.name, dict(others), sorted(seen),
                                                      cores - 1))


def parse_expected(path):
    expected = []
    with open(path) as f:
        for line in f:
            if not line.strip():
                continue
            name, labels, value = line.split()
            pairs = tuple(sorted(tuple(p.split("=", 1)) for p in labels.split(",")))
            expected.append(((name, pairs), int(value)))
    return expected


def main():
    if len(sys.argv) not in (3, 4):
        fail(__doc__)
    with open(sys.argv[1]) as f:
        text = f.read()
    cores = int(sys.argv[2])
    if not text.endswith("\n"):
        fail("the text does not end with a newline")
    samples = {}
    families = 0
    try:
        for fam in text_string_to_metric_families(text):
            check_family(fam, cores, samples)
            families += 1
    except ValueError as e:
        fail("the parser refused the text: %s" % e)
    if families == 0:
        fail("no metric family")
    checked = 0
    if len(sys.argv) == 4:
        for key, value in parse_expected(sys.argv[3]):
            if key not in samples:
                fail("%s%s: missing" % (key[0], dict(key[1])))
            if samples[key] != value:
                fail("%s%s: %d, expected %d" % (key[0], dict(key[1]), samples[key], value))
            checked += 1
    print("check_metrics: %d families, %d samples, %d checked" % (families, len(samples), checked))


if __name__ == "__main__":
    main()
