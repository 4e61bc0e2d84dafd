"""Run many real imgtool commands in one Python process (saves the interpreter and
import start-up per call). One JSON request per line on stdin:
{"cwd": DIR, "args": [...]}; one JSON reply per line: {"rc": N, "stdout": HEX}."""
import io
import json
import os
import sys

import click
from imgtool.main import imgtool

real_stdout = sys.stdout
for line in sys.stdin:
    req = json.loads(line)
    os.chdir(req["cwd"])
    buf = io.BytesIO()
    sys.stdout = io.TextIOWrapper(buf, encoding="utf-8", write_through=True)
    try:
        imgtool.main(req["args"], prog_name="imgtool", standalone_mode=False)
        rc = 0
    except SystemExit as e:
        rc = e.code if isinstance(e.code, int) else 1
    except click.ClickException as e:
        e.show()
        rc = e.exit_code
    except Exception as e:  # a crash inside imgtool is a failure, not ours to hide
        print(f"imgtool raised {e!r}", file=sys.stderr)
        rc = 99
    sys.stdout.flush()
    sys.stdout.detach()
    sys.stdout = real_stdout
    out = buf.getvalue().hex()
    real_stdout.write(json.dumps({"rc": rc, "stdout": out}) + "\n")
    real_stdout.flush()
