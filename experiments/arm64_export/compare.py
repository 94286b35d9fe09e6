"""Compare the features two machines computed with the same export/ heads (device_features.py)."""

import argparse

import numpy as np

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("first")
parser.add_argument("second")
parser.add_argument("--out", required=True)
args = parser.parse_args()
a, b = np.load(args.first), np.load(args.second)
rows = ["| head | largest difference / feature range |", "|---|---|"]
for name in sorted(set(a.files) - {"machine"}):
    rows.append(f"| {name} | {np.abs(a[name] - b[name]).max() / np.ptp(b[name]):.2e} |")
text = (f"# export/ heads on {a['machine']} against {b['machine']}\n\nMade by "
        f"`python experiments/arm64_export/compare.py {args.first} {args.second} --out {args.out}` "
        f"(commands in device_features.py). 100 sample images (test 100-199) per head.\n\n" + "\n".join(rows) + "\n")
open(args.out, "w").write(text)
print(text)
