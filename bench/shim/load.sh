# Shared by bench/shim/suite.sh and bench/shim/lib.sh (sourced): waiting for a quieter machine.

# Before a timed part: wait (at most LOAD_WAIT_SECS, default 180) while the 1-minute load average
# is above LOAD_MAX (default 2: 2 cores, shared with other jobs), then go on anyway; $LOAD1 is the
# load at the start, for the results.
LOAD_MAX=${LOAD_MAX:-2} LOAD_WAIT_SECS=${LOAD_WAIT_SECS:-180}
wait_quiet() {
    local waited=0 l
    while l=$(cut -d' ' -f1 /proc/loadavg) && awk -v l="$l" -v m="$LOAD_MAX" 'BEGIN{exit !(l > m)}' &&
        [ "$waited" -lt "$LOAD_WAIT_SECS" ]; do
        [ "$waited" = 0 ] && log "  load average $l > $LOAD_MAX: waiting (at most ${LOAD_WAIT_SECS}s)"
        sleep 10; waited=$((waited + 10))
    done
    LOAD1=$(cut -d' ' -f1 /proc/loadavg)
    [ "$waited" -gt 0 ] && log "  waited ${waited}s, load average now $LOAD1"
    return 0
}
