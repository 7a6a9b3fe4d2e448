//! Barrier alignment for tasks with input channels (asynchronous barrier snapshots): a channel
//! that delivered checkpoint n's barrier is blocked until every other open channel of every
//! input delivered it too, so the snapshot holds exactly the effects of the records before the
//! barriers.

use spate_api::CheckpointBarrier;
use spate_network::{ChannelRef, InputGates};

#[derive(Debug, Default)]
pub(crate) struct BarrierAligner {
    pending: Option<Pending>,
    /// The newest checkpoint aligned or abandoned: barriers of older ones are stale.
    newest: u64,
}

#[derive(Debug)]
struct Pending {
    barrier: CheckpointBarrier,
    /// By input, by channel.
    arrived: Vec<Vec<bool>>,
}

impl BarrierAligner {
    /// A barrier came in on `at`; returns it once aligned on every open channel.
    pub(crate) fn on_barrier(
        &mut self,
        at: ChannelRef,
        barrier: CheckpointBarrier,
        gates: &mut InputGates,
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
            gates.unblock_all();
            self.pending = None;
        }
        self.newest = self.newest.max(barrier.id);
        let pending = self.pending.get_or_insert_with(|| Pending {
            barrier,
            arrived: (0..gates.num_inputs())
                .map(|input| vec![false; gates.num_channels(input)])
                .collect(),
        });
        pending.arrived[at.input][at.channel] = true;
        gates.block(at);
        self.complete(gates)
    }

    /// A channel ended: it no longer holds back an alignment in progress.
    pub(crate) fn on_end(&mut self, gates: &mut InputGates) -> Option<CheckpointBarrier> {
        self.complete(gates)
    }

    fn complete(&mut self, gates: &mut InputGates) -> Option<CheckpointBarrier> {
        let pending = self.pending.as_ref()?;
        let aligned = pending.arrived.iter().enumerate().all(|(input, arrived)| {
            arrived
                .iter()
                .enumerate()
                .all(|(channel, &arrived)| arrived || !gates.is_open(ChannelRef { input, channel }))
        });
        if !aligned {
            return None;
        }
        gates.unblock_all();
        self.pending.take().map(|p| p.barrier)
    }
}
