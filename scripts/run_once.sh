# Sourced by the reproduce_*.sh scripts: one attack run per results directory, skipped when done.
# run_once VERB OUT_DIR NAME ARGS...: `python -m mia_tf VERB --data-dir $DATA --out OUT_DIR/NAME ARGS...`
# unless OUT_DIR/NAME/metrics.json exists (it is written last, by rename), so a killed script resumes.
run_once() {
  local verb=$1 out=$2 name=$3; shift 3
  [ -f "$out/$name/metrics.json" ] && return 0
  python -m mia_tf "$verb" --data-dir "$DATA" --out "$out/$name" "$@"
}
