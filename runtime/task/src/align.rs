//! Barrier alignment for tasks with input channels (asynchronous barrier snapshots): a channel
//! that delivered checkpoint n's barrier is blocked until every other open channel delivered it
//! too, so the snapshot holds exactly the effects of the records before the barriers.

use spate_api::CheckpointBarrier;
use spate_network::InputGate;

#[derive(Debug, Default)]
pub(crate) struct BarrierAligner {
    pending: Option<Pending>,
    /// The newest checkpoint aligned or abandoned: barriers of older ones are stale.
    newest: u64,
}

#[derive(Debug)]
struct Pending {
    barrier: CheckpointBarrier,
    arrived: Vec<bool>,
}

impl BarrierAligner {
    /// A barrier came in on `channel`; returns it once aligned on every open channel.
    pub(crate) fn on_barrier(
        &mut self,
        channel: usize,
        barrier: CheckpointBarrier,
        gate: &mut InputGate,
    ) -> Option<CheckpointBarrier> {
        if barrier.id <= self.newest
            && self
                .pending
                .as_ref()
                .is_none_or(|p| p.barrier.id != barrier.id)
        {
            return None;
        }
        if self
            .pending
            .as_ref()
            .is_some_and(|p| p.barrier.id < barrier.id)
        {
            // A newer checkpoint overtook the one being aligned, which can then never complete.
            gate.unblock_all();
            self.pending = None;
        }
        self.newest = self.newest.max(barrier.id);
        let pending = self.pending.get_or_insert_with(|| Pending {
            barrier,
            arrived: vec![false; gate.num_channels()],
        });
        pending.arrived[channel] = true;
        gate.block(channel);
        self.complete(gate)
    }

    /// `channel` ended: it no longer holds back an alignment in progress.
    pub(crate) fn on_end(&mut self, gate: &mut InputGate) -> Option<CheckpointBarrier> {
        self.complete(gate)
    }

    fn complete(&mut self, gate: &mut InputGate) -> Option<CheckpointBarrier> {
        let pending = self.pending.as_ref()?;
        let aligned = (0..gate.num_channels()).all(|c| pending.arrived[c] || !gate.is_open(c));
        if !aligned {
            return None;
        }
        gate.unblock_all();
        self.pending.take().map(|p| p.barrier)
    }
}
