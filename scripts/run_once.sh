# Sourced by the reproduce_*.sh scripts: one attack run per results directory, skipped when done.
# run_once VERB OUT_DIR NAME ARGS...: `python -m mia_tf VERB --data-dir $DATA --out OUT_DIR/NAME ARGS...`
# unless OUT_DIR/NAME/metrics.json exists (it is written last, by rename), so a killed script resumes.
# A run holds a lock (flock on a file descriptor that the attack inherits, so it is released when
# the last of the script and the attack ends, however they end) and a run locked by another
# process is skipped, so two copies of a script started together share its runs out between them
# instead of both doing the same one. Whether the lock was taken is flock's own answer, apart from
# the attack's exit status.
run_once() {
  local verb=$1 out=$2 name=$3; shift 3
  local done_file="$out/$name/metrics.json" status=0 lock_fd
  [ -f "$done_file" ] && return 0
  exec {lock_fd}>"${TMPDIR:-/tmp}/mia_tf_run_once_${out//\//_}_${name}.lock"
  if ! flock --nonblock "$lock_fd"; then
    exec {lock_fd}>&-
    echo "run_once: $name is being run by another process; skipped here" >&2
    return 0
  fi
  # metrics.json is checked again under the lock: the other process may have finished the run
  # between the check above and taking the lock.
  [ -f "$done_file" ] || python -m mia_tf "$verb" --data-dir "$DATA" --out "$out/$name" "$@" || status=$?
  exec {lock_fd}>&-
  return "$status"
}

# RUNNERS=N bash scripts/reproduce_X.sh ...: N copies of the script at once, sharing its runs out
# (run_once's locks), TensorFlow in each on nproc / N threads, not a thread for every core each.
# On the 2 cores, CIFAR query-free shadow training steps a second, all copies together: one copy
# 4.36, two copies on default threads 4.97, two on one thread each 5.15 (results/bench_runners.md).
# A reproduce script calls start_runners "$@" before its runs and wait_for_runners before its summary.
OTHER_RUNNERS=()
start_runners() {
  local runners=${RUNNERS:-1}
  if ! [[ $runners =~ ^[1-9][0-9]*$ ]]; then
    echo "RUNNERS must be a positive whole number (copies of the script at once), got '$runners'" >&2
    exit 2
  fi
  ((runners > 1)) || return 0
  local threads=$(($(nproc) / runners))
  ((threads >= 1)) || threads=1
  # (threads the user set are kept)
  export TF_NUM_INTRAOP_THREADS=${TF_NUM_INTRAOP_THREADS:-$threads} TF_NUM_INTEROP_THREADS=${TF_NUM_INTEROP_THREADS:-$threads}
  local copy
  for ((copy = 2; copy <= runners; copy++)); do
    RUNNERS=1 bash "scripts/$(basename "$0")" "$@" &
    OTHER_RUNNERS+=($!)
  done
}
wait_for_runners() {  # fails if another copy failed (its error is in the same output)
  local pid failed=0
  for pid in "${OTHER_RUNNERS[@]}"; do wait "$pid" || failed=1; done
  return "$failed"
}

# bfloat16 where this machine computes it itself, else nothing (float32): emulated bfloat16 on a CPU
# without AVX512-BF16 or AMX took 10-20 times float32's time (mia_tf.precision.native_bfloat16).
bfloat16_if_native() {  # bfloat16_if_native OPTION: prints "OPTION bfloat16" or nothing
  python -c 'import sys; from mia_tf.precision import native_bfloat16; sys.exit(not native_bfloat16())' \
    && echo "$1 bfloat16" || true
}
