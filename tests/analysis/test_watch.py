#!/usr/bin/env python3
"""The live view end to end: a real sweep (two short Fashion-MNIST trials, one after the other)
and `metadistill report DIR --watch 0.2 --until-done --expect 2 --format json --html PAGE` side
by side. A second watcher (Markdown, no --until-done) is stopped with SIGTERM and must
exit 0 after a last refresh. The first watcher must have seen an intermediate epoch of a running trial and the final state
(every trial complete, every epoch), the page must be whole, and afterwards every trial's log must
be intact (status complete, every epoch row in every column). Exit 77 (skipped) without the
dataset. Usage: test_watch.py METADISTILL"""
import json
import os
import signal
import subprocess
import sys
import tempfile

FASHION = "/usr/share/datasets/fashion-mnist"
EPOCHS = 5
SWEEP = f"""name: watch
base:
  dataset: {{name: idx, root: {FASHION}}}
  model: {{arch: wrn_10_1, num_classes: 10, in_channels: 1}}
  optim: {{epochs: {EPOCHS}, batch_size: 16, lr: 0.05}}
  runtime: {{device: cpu, threads: 1, log_every: 1, max_train_batches: 10, max_eval_batches: 1}}
grid:
  method.name: [baseline, byot]
"""
HEADER = "<!-- metadistill report --watch:"


def refreshes(output):
    """The JSON reports of the watcher's output, one per refresh."""
    reports, current = [], None
    for line in output.splitlines(keepends=True):
        if line.startswith(HEADER):
            if current is not None:
                reports.append(json.loads(current))
            current = ""
        elif current is not None:
            current += line
    if current:
        reports.append(json.loads(current))
    return reports


def trials(report):
    return [trial for group in report["groups"] for trial in group["trials"]]


def main():
    binary = sys.argv[1]
    if not os.path.isdir(FASHION):
        print(f"skipped: {FASHION} is missing (Debian package dataset-fashion-mnist)")
        return 77
    environment = dict(os.environ, OMP_WAIT_POLICY="passive", OMP_NUM_THREADS="1")
    with tempfile.TemporaryDirectory() as tmp:
        spec = os.path.join(tmp, "watch.yaml")
        out = os.path.join(tmp, "runs")
        page = os.path.join(tmp, "live.html")
        os.makedirs(out)
        with open(spec, "w") as f:
            f.write(SWEEP)
        watcher = subprocess.Popen(
            [binary, "report", out, "--watch=0.2", "--until-done", "--expect", "2",
             "--format", "json", "--html", page],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment)
        # A second watcher without --until-done: stopped by SIGTERM, after one last refresh.
        interrupted = subprocess.Popen([binary, "report", out, "--watch", "0.5"],
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                       text=True, env=environment)
        sweep = subprocess.run([binary, "sweep", spec, "--out", out, "--progress", "off"],
                               capture_output=True, text=True, env=environment, timeout=600)
        assert sweep.returncode == 0, sweep.stderr
        try:
            stdout, stderr = watcher.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            watcher.kill()
            raise AssertionError("the watcher did not stop after the sweep finished")
        assert watcher.returncode == 0, stderr
        interrupted.send_signal(signal.SIGTERM)
        interrupted_out, interrupted_err = interrupted.communicate(timeout=60)
        assert interrupted.returncode == 0, interrupted_err
        headers = [line for line in interrupted_out.splitlines() if line.startswith(HEADER)]
        assert headers and headers[-1].endswith(", final -->"), headers[-3:]
        assert "| 1 complete |" in interrupted_out.split(HEADER)[-1], interrupted_out[-2000:]
        reports = refreshes(stdout)
        assert len(reports) >= 3, f"{len(reports)} refreshes"
        # Intermediate epochs: some refresh shows a running trial part-way (never a partial row:
        # the reader keeps only rows present in every column, so epochs are whole numbers).
        seen = set()
        for report in reports:
            for trial in trials(report):
                if trial["status"] == "running":
                    seen.add(trial["epochs"])
                assert float(trial["epochs"]).is_integer()
        assert any(0 < epochs < EPOCHS for epochs in seen), f"running epochs seen: {seen}"
        # The final state: the last refresh has both trials complete with every epoch.
        last = trials(reports[-1])
        assert len(last) == 2 and all(t["status"] == "complete" for t in last), last
        assert all(t["epochs"] == EPOCHS for t in last), last
        assert "unequal lengths" not in stderr, stderr
        html = open(page).read()
        assert html.startswith("<!DOCTYPE html>") and html.rstrip().endswith("</html>")
        assert not [name for name in os.listdir(tmp) if name.endswith(".tmp")]
        # The logs are intact: read again, every trial complete with every epoch row.
        after = subprocess.run([binary, "report", out, "--format", "json"],
                               capture_output=True, text=True, env=environment)
        assert after.returncode == 0 and "unequal lengths" not in after.stderr, after.stderr
        final = trials(json.loads(after.stdout))
        assert len(final) == 2 and all(t["status"] == "complete" for t in final), final
        assert all(t["epochs"] == EPOCHS and t["has_final"] for t in final), final
        print(f"ok: {len(reports)} refreshes, running epochs seen {sorted(seen)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
