# Internal names renamed from the public prefix (corun_) to internal ones
# (issue 13). Applied to the tree once; kept to bring branches forked
# before the rename up to date: sed -i -f scripts/internal-names.sed FILES
s/\bcorun_lock_t\b/cr_lock_t/g
s/\bCORUN_LOCK_INIT\b/CR_LOCK_INIT/g
s/\bcorun_lock\b/cr_lock/g
s/\bcorun_unlock\b/cr_unlock/g
s/\bcorun_config\b/cr_config/g
s/\bstruct corun_config\b/struct cr_config/g
s/\bcorun_ctx_switch\b/cr_ctx_switch/g
s/\bcorun_ctx_trampoline\b/cr_ctx_trampoline/g
s/\bcorun_tls_sched\b/sched_tls/g
s/\bsched_for_hook_slow\b/sched_for_program_slow/g
s/\bCORUN_\([A-Z_]*\)_H\b/CR_\1_H/g
# one park primitive (issue 13)
s/sched_park_interruptible(\([^,]*\), \([^,]*\), INTR_ALWAYS)/sched_park(\1, \2, PARK_INTR_ALWAYS)/g
s/sched_park_interruptible(\([^,]*\), \([^,]*\), INTR_RESTART)/sched_park(\1, \2, PARK_INTR_RESTART)/g
s/sched_park_cancellable(\([^,]*\), \([^,)]*\))/sched_park(\1, \2, PARK_CANCEL)/g
s/sched_park(s, deadline)/sched_park(s, deadline, PARK_PLAIN)/g
s/sched_park(s, DEADLINE_NONE)/sched_park(s, DEADLINE_NONE, PARK_PLAIN)/g
s/sched_park(s, deadline_after(timeout_ns))/sched_park(s, deadline_after(timeout_ns), PARK_PLAIN)/g
s/\bINTR_ALWAYS\b/PARK_INTR_ALWAYS/g
s/\bINTR_RESTART\b/PARK_INTR_RESTART/g
s/\benum intr_mode\b/enum park_mode/g
s/\bwait_events\b/wait_want/g
s/\bsched_for_hook()/sched_for_program()/g
