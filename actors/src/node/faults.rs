//! Fault injection for test clusters (`limits.allow_fault_injection`, reached through the
//! internal gRPC service): a slow disk and a wall clock that jumps. The chaos runs use them
//! to show that neither loses an acknowledged record.
//!
//! Raft does not read the wall clock (its ticks come from the runtime's monotonic timer), so
//! a jump moves only what is defined by wall time: record timestamps, retention, group
//! sessions and transaction timeouts.

use super::Node;
use std::time::Duration;

impl Node {
    /// From now on every flush of this node's store first waits `delay` (zero: a healthy disk).
    pub fn inject_flush_delay(&self, delay: Duration) {
        tracing::warn!(delay_ms = delay.as_millis() as u64, "fault injection: every flush waits this long first (a slow disk)");
        self.inner.store.set_flush_delay(delay);
    }

    /// Sets this node's wall clock `offset_ms` off the system's (zero: true time again).
    pub fn inject_clock_offset(&self, offset_ms: i64) {
        tracing::warn!(offset_ms, "fault injection: the node's wall clock is set off by this much");
        self.inner.clock.set_offset_ms(offset_ms);
    }
}
