"""Run bad-input cases in-process: python harness.py CASEFILE; prints rows: id | rc | first stderr line | verdict."""
import contextlib, io, signal, sys
import torch; torch.set_num_threads(1)
from editvit.cli import main

class Timeout(Exception): pass
def _alarm(*a): raise Timeout()
signal.signal(signal.SIGALRM, _alarm)

def run_case(cid, argv, limit=45):
    err, out = io.StringIO(), io.StringIO()
    rc, tb = None, None
    signal.alarm(limit)
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            rc = main(argv)
    except SystemExit as e:
        rc = e.code
    except Timeout:
        rc = 'TIMEOUT'
    except BaseException as e:
        tb = f'{type(e).__name__}: {str(e)[:200]}'
        rc = 'EXC'
    finally:
        signal.alarm(0)
    lines = [l for l in err.getvalue().splitlines() if l.strip()]
    first = tb or (next((l for l in lines if 'error' in l.lower()), lines[0] if lines else '') )
    print(f'{cid} | {rc} | {first[:300]}', flush=True)

if __name__ == '__main__':
    ns = {}
    exec(open(sys.argv[1]).read(), ns)
    only = sys.argv[2:] 
    for cid, argv in ns['CASES']:
        if only and cid not in only: continue
        run_case(cid, argv)
