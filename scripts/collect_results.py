"""Collect every metrics.json under a results directory into one Markdown table.

    python scripts/collect_results.py results/whitebox --out results/whitebox.md
"""

import argparse
import os

from mia_tf.report import markdown_table_page, run_records, summary_cells, write_results_file


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("root")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    rows, machines = [], set()
    for name, record in run_records(args.root):
        machines.add(record["machine"])
        rows.append([name, record["model"], record["layer"], record["preset"],
                     record["method"], record["victims"], *summary_cells(record["summary"]),
                     f"{record['seconds']:.0f}"])
    text = markdown_table_page(f"Results: {os.path.basename(args.root.rstrip('/'))}", [
        f"Made by `python scripts/collect_results.py {args.root} --out {args.out}` from the metrics.json of",
        "each run (each run's directory name says its model, split, preset and victims). Means with 95 %",
        "confidence intervals. SSIM paper: data_range of the reconstruction (the authors'); standard: 1.",
        "Seconds: attack time (decoder training for a prior excluded; it is cached).",
        f"Machine: {'; '.join(sorted(machines))}.",
    ], ["run", "model", "layer", "preset", "method", "images", "PSNR dB", "SSIM paper", "SSIM standard", "seconds"],
        rows)
    write_results_file(args.out, text)
    print(text)


if __name__ == "__main__":
    main()
