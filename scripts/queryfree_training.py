"""How each query-free run spent its time: shadows, decoders and which shadow won, one row a run.

    python scripts/queryfree_training.py results/queryfree --out results/queryfree_training.md

Reads the metrics.json that `python -m mia_tf queryfree` writes (each shadow's and decoder's training
record travels in it, from the cache when the run reused them), so the README's shadow and decoder
times come from here rather than from memory. Runs from before the shadows were recorded show "-".
"""

import argparse

from mia_tf.attacks.query_free import gain_lower_bound
from mia_tf.report import markdown_table_page, run_records, write_results_file


def seconds_cell(training):
    """Training seconds, "r" marking a run resumed from a backup (its seconds cover the resumed part)."""
    if not training or training.get("seconds") is None:
        return "-"
    return f"{training['seconds']:.0f}{'r' if training.get('resumed') else ''}"


def final_accuracy(training):
    accuracy = (training or {}).get("history", {}).get("accuracy")
    return f"{accuracy[-1]:.3f}" if accuracy else "-"


def levels_cell(refinement):
    """The levels map cross-shadow validation chose, its mean gain there and the lower bound it was
    chosen by (for runs that recorded the gain per pair); "-" for runs from before the levels were
    validated (their reconstructions are as inverted)."""
    levels = refinement.get("levels")
    if levels is None:
        return "-"
    cell = f"{levels['black']:g}-{levels['white']:g} ({refinement['levels_gain_db']:+.2f}"
    pair_gains = refinement.get("levels_pair_gains_db")
    return cell + (f", bound {gain_lower_bound(pair_gains):+.2f})" if pair_gains else ")")


def before_levels_cell(refinement):
    """The victims' PSNR / SSIM (paper) before the levels map, for runs that recorded it."""
    before = refinement.get("victims_before_levels")
    return "-" if before is None else f"{before['psnr']:.2f} / {before['ssim_paper']:.3f}"


def run_row(name, record):
    shadows = record.get("shadows") or []
    refinement = record.get("refinement") or {}
    gain = refinement.get("cross_shadow_gain_db")
    return [
        name,
        (record.get("shadow") or {}).get("train_dtype") or "float32",
        " / ".join(seconds_cell(s.get("training")) for s in shadows) or "-",
        " / ".join(final_accuracy(s.get("training")) for s in shadows) or "-",
        " / ".join(seconds_cell(s.get("decoder_training")) for s in shadows if "decoder_training" in s) or "-",
        " / ".join(str(count) for count in record.get("chosen_shadow_counts") or []) or "-",
        "-" if gain is None else f"{gain:+.2f} ({'kept' if refinement.get('refined') else 'not kept'})",
        levels_cell(refinement),
        before_levels_cell(refinement),
        f"{record['seconds']:.0f}",
    ]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("root")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    rows = [run_row(name, record) for name, record in run_records(args.root)]
    text = markdown_table_page("Query-free runs: where the time went", [
        f"Made by `python scripts/queryfree_training.py {args.root} --out {args.out}` from each run's metrics.json.",
        "Shadow and decoder seconds are each one's own training time, on whichever 2-core machine trained it",
        "(a cached one may come from an earlier session); r: resumed from a per-epoch backup, the seconds",
        "are the resumed part only. Tail accuracy: tail(shadow(x)) on the attacker's data after the last epoch.",
        "Victims per shadow: how many victims each shadow re-explained best. Validation: what rMLE refinement",
        "gained across shadows on 100 of the attacker's own images (kept only when positive). Levels: the",
        "black and white points the same validation chose, the dB they gained there on average and the 95%",
        "lower bound over the shadow pairs they were chosen by (-: a run from before the levels were",
        "validated; no bound: before the bound). Before levels: the victims' PSNR / SSIM without the map, which only the",
        "report can score (the figures after it are in results/queryfree.md). Run s: the run's own wall time,",
        "including any shadow or decoder it trained rather than loaded.",
    ], ["run", "shadow dtype", "shadow s", "tail accuracy", "decoder s", "victims per shadow", "validation dB",
        "levels", "before levels", "run s"], rows)
    write_results_file(args.out, text)
    print(text)


if __name__ == "__main__":
    main()
