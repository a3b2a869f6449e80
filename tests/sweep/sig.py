import os, signal, subprocess, sys, time, shutil
from shared import CPU, MODEL, O, ROOT
env = dict(os.environ, OMP_NUM_THREADS='1')
P = sys.executable
T = [*MODEL, *CPU, '--batch-size', '8', '--no-progress', '--dataset', 'synthetic', '--num-classes', '10']
out = f'{O}/sig'
for sig in (signal.SIGINT, signal.SIGTERM):
    for delay in map(float, sys.argv[1:]):
        shutil.rmtree(out, ignore_errors=True)
        p = subprocess.Popen([P, '-m', 'editvit', 'train', *T, '--epochs', '3', '--synthetic-samples', '512', '--output', out], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=f'{ROOT}/cwd')
        time.sleep(delay); p.send_signal(sig); o, e = p.communicate()
        lines = [l for l in e.splitlines() if not l.startswith('warning')]
        files = sorted(os.listdir(out)) if os.path.isdir(out) else []
        print(f'{sig.name}@{delay}s | {p.returncode} | {lines[0] if lines else ""} | {len(lines)} stderr lines | {" ".join(files)}', flush=True)
        if os.path.isfile(out + '/config.yaml'):
            r = subprocess.run([P, '-m', 'editvit', 'train', '--resume', '--output', out, *CPU, '--no-progress'], env=env, capture_output=True, text=True, cwd=f'{ROOT}/cwd')
            print(f'   resume rc={r.returncode} {(r.stderr.strip().splitlines() or [""])[-1][:200]}', flush=True)
