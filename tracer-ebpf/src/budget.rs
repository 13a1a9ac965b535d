//! Per-CPU, per-second budgets of what the programs hand to the agent (alert events, captures).

use aya_ebpf::maps::PerCpuArray;
use tracer_common::policy::EventBudget;

/// Nanoseconds in a second (`bpf_ktime_get_ns` ticks).
pub(crate) const NS_PER_SEC: u64 = 1_000_000_000;

/// Takes one from this CPU's budget in `map` for the current second (`now` in ns); `false`
/// when `per_sec` are spent.
#[inline(always)]
pub(crate) fn take(map: &PerCpuArray<EventBudget>, now: u64, per_sec: u32) -> bool {
    let Some(budget) = map.get_ptr_mut(0) else {
        return false;
    };
    // SAFETY: this CPU's own entry; per-CPU maps need no atomics.
    unsafe {
        if now.wrapping_sub((*budget).window_start) >= NS_PER_SEC {
            (*budget).window_start = now;
            (*budget).sent = 0;
        }
        if (*budget).sent >= u64::from(per_sec) {
            return false;
        }
        (*budget).sent += 1;
    }
    true
}
