"""Each measurement of a bench script runs in a process of its own (so that peak memory, warm-up and thread pools are its own):
the parent starts the script again with `--one ...`, the child prints one `RESULT <json>` line, the parent reads it."""
import json, subprocess, sys

def emit(res:dict):
    "In the child: hand `res` to the parent"
    print('RESULT ' + json.dumps(res), flush=True)

def run_child(cmd:list, what:str) -> dict:
    "In the parent: run `cmd` and return the dict its child emitted; exit naming `what`, with the child's stderr, if it emitted none"
    r = subprocess.run(cmd, capture_output=True, text=True)
    line = [l for l in r.stdout.splitlines() if l.startswith('RESULT ')]
    if not line: sys.exit(f"{what} failed:\n{r.stderr[-3000:]}")
    return json.loads(line[0][7:])
