"""python ab.py MODE ROUNDS DIR1 DIR2 ... : alternate processes, print medians and ratios to DIR1."""
import subprocess, sys, statistics as st, os
mode, rounds, dirs = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
size = os.environ.get("BTN", "250,100,100")
res = {d: [] for d in dirs}
for r in range(rounds):
    for d in dirs:
        out = subprocess.run([sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)), "one.py"), mode, size],
                             cwd=d, env=dict(os.environ, PYTHONPATH=d), capture_output=True, text=True)
        res[d].append(float(out.stdout.strip().splitlines()[-1]))
base = st.median(res[dirs[0]])
for d in dirs:
    m = st.median(res[d])
    print(f"{d:>12}: median {m:.3f} ms ratio {m/base:.3f} | " + " ".join(f"{v:.2f}" for v in res[d]))
