"""python isa_ab.py MODE ROUNDS CHECKOUT B,T,N [CALLS]

One build, two processor paths side by side: alternates fresh processes with
FASTSNN_CPU_ISA=avx2 (AVX2 tile products) and unset (AVX-512 products where the processor has
them), each timing one.py's MODE (fwd | bwd | fwdbwd) on the checkout's build, and prints the
per-round medians and the ratio auto / avx2."""
import os
import statistics as st
import subprocess
import sys

mode, rounds, build, size = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
calls = sys.argv[5] if len(sys.argv) > 5 else "40"
one = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "2026-12-01b-rlif-cpu",
                   "one.py")
res = {"avx2": [], "auto": []}
for r in range(rounds):
    for isa in res:
        env = dict(os.environ, PYTHONPATH=build, FASTSNN_CPU_ISA=isa)
        out = subprocess.run([sys.executable, one, mode, size, calls], env=env,
                             capture_output=True, text=True, cwd=build)
        if out.returncode:
            sys.exit(out.stderr)
        res[isa].append(float(out.stdout.split()[-1]))
    print(r, {k: round(v[-1], 3) for k, v in res.items()}, flush=True)
a, b = st.median(res["avx2"]), st.median(res["auto"])
print(f"{mode} {size}: avx2 {a:.3f} ms, auto {b:.3f} ms, ratio auto/avx2 {b / a:.3f}")
