use spate_api::{MAX_WATERMARK, MIN_WATERMARK, StreamElement, Timestamp};
use spate_network::ChannelRef;

#[derive(Debug, Clone, Copy)]
struct Channel {
    watermark: Timestamp,
    idle: bool,
    /// An active channel takes part in the minimum only once its watermark has caught up with
    /// what the task already emitted; before that it could only pull event time backwards.
    aligned: bool,
}

/// Combines the watermarks of a task's input channels (Flink's status watermark valve): the task's
/// watermark is the minimum over active channels, idle channels do not hold it back, and it only
/// moves forward.
pub struct WatermarkValve {
    channels: Vec<Channel>,
    emitted: Timestamp,
    idle: bool,
}

impl WatermarkValve {
    pub fn new(channels: usize) -> Self {
        WatermarkValve {
            channels: vec![
                Channel {
                    watermark: MIN_WATERMARK,
                    idle: false,
                    aligned: true,
                };
                channels
            ],
            emitted: MIN_WATERMARK,
            idle: false,
        }
    }

    pub fn current(&self) -> Timestamp {
        self.emitted
    }

    /// Feeds one channel's watermark, idleness or end; returns what the task must emit.
    pub fn input(&mut self, channel: usize, element: &StreamElement) -> Vec<StreamElement> {
        let ch = &mut self.channels[channel];
        match element {
            StreamElement::Watermark(wm) => {
                if *wm > ch.watermark {
                    ch.watermark = *wm;
                }
                if !ch.aligned && ch.watermark >= self.emitted {
                    ch.aligned = true;
                }
            }
            StreamElement::Idle(idle) => {
                ch.idle = *idle;
                if !*idle {
                    ch.aligned = ch.watermark >= self.emitted;
                }
            }
            StreamElement::End => {
                ch.watermark = MAX_WATERMARK;
                ch.idle = false;
                ch.aligned = true;
            }
            StreamElement::Batch(_) | StreamElement::Barrier(_) => return Vec::new(),
        }
        self.advance()
    }

    fn advance(&mut self) -> Vec<StreamElement> {
        let mut out = Vec::new();
        let all_idle = !self.channels.is_empty() && self.channels.iter().all(|c| c.idle);
        if all_idle != self.idle {
            self.idle = all_idle;
            out.push(StreamElement::Idle(all_idle));
        }
        let min = self
            .channels
            .iter()
            .filter(|c| !c.idle && c.aligned)
            .map(|c| c.watermark)
            .min();
        if let Some(min) = min
            && min > self.emitted
        {
            self.emitted = min;
            out.push(StreamElement::Watermark(min));
        }
        out
    }
}

/// The watermarks of a task's inputs: each input's channels combine in a valve of their own
/// (that input's watermark, which a multi-input operator is told), and the inputs combine in
/// another as channels do, so the task's watermark is the least of its inputs', idle inputs left
/// out. With one input this is exactly one valve over its channels.
pub(crate) struct InputValves {
    inputs: Vec<WatermarkValve>,
    combined: WatermarkValve,
}

/// What one element did to the valves.
#[derive(Debug, Default)]
pub(crate) struct ValveOutput {
    /// The element's input's own watermark advanced to this.
    pub input_watermark: Option<Timestamp>,
    /// What the task emits: its watermark advanced, or all its inputs went idle or came back.
    pub task: Vec<StreamElement>,
}

impl InputValves {
    /// One valve per input, of that input's number of channels.
    pub(crate) fn new(channels: impl IntoIterator<Item = usize>) -> Self {
        let inputs: Vec<WatermarkValve> = channels.into_iter().map(WatermarkValve::new).collect();
        let combined = WatermarkValve::new(inputs.len());
        InputValves { inputs, combined }
    }

    pub(crate) fn current(&self) -> Timestamp {
        self.combined.current()
    }

    /// Feeds a watermark, idleness or end that came in on `at`.
    pub(crate) fn input(&mut self, at: ChannelRef, element: &StreamElement) -> ValveOutput {
        let mut out = ValveOutput::default();
        for per_input in self.inputs[at.input].input(at.channel, element) {
            if let StreamElement::Watermark(wm) = per_input {
                out.input_watermark = Some(wm);
            }
            // An input whose channels all ended emitted the greatest watermark: it no longer
            // holds the task back.
            out.task.extend(self.combined.input(at.input, &per_input));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wm(t: Timestamp) -> StreamElement {
        StreamElement::Watermark(t)
    }

    fn emitted(out: Vec<StreamElement>) -> Vec<String> {
        out.iter().map(|e| format!("{e:?}")).collect()
    }

    #[test]
    fn the_minimum_over_channels_is_emitted_once_it_advances() {
        let mut v = WatermarkValve::new(2);
        assert!(v.input(0, &wm(10)).is_empty());
        assert_eq!(emitted(v.input(1, &wm(5))), vec!["Watermark(5)"]);
        assert!(v.input(1, &wm(3)).is_empty(), "watermarks never go back");
        assert_eq!(emitted(v.input(1, &wm(20))), vec!["Watermark(10)"]);
        assert_eq!(v.current(), 10);
    }

    #[test]
    fn idle_channels_do_not_hold_the_watermark_back() {
        let mut v = WatermarkValve::new(3);
        v.input(0, &wm(100));
        v.input(1, &wm(50));
        assert_eq!(
            emitted(v.input(2, &StreamElement::Idle(true))),
            vec!["Watermark(50)"]
        );
        assert_eq!(
            emitted(v.input(1, &StreamElement::Idle(true))),
            vec!["Watermark(100)"]
        );
        assert_eq!(
            emitted(v.input(0, &StreamElement::Idle(true))),
            vec!["Idle(true)"],
            "all idle: the task goes idle"
        );
        // Channel 2 comes back behind the emitted watermark: it is ignored until it catches up.
        assert_eq!(
            emitted(v.input(2, &StreamElement::Idle(false))),
            vec!["Idle(false)"]
        );
        assert!(v.input(2, &wm(60)).is_empty());
        assert_eq!(emitted(v.input(2, &wm(120))), vec!["Watermark(120)"]);
    }

    #[test]
    fn ended_channels_count_as_done() {
        let mut v = WatermarkValve::new(2);
        v.input(0, &wm(7));
        assert_eq!(
            emitted(v.input(1, &StreamElement::End)),
            vec!["Watermark(7)"]
        );
        assert_eq!(
            emitted(v.input(0, &StreamElement::End)),
            vec![format!("Watermark({MAX_WATERMARK})")]
        );
    }

    fn at(input: usize, channel: usize) -> ChannelRef {
        ChannelRef { input, channel }
    }

    #[test]
    fn with_one_input_the_valves_emit_what_one_valve_does() {
        let script = [
            (0, wm(10)),
            (1, wm(5)),
            (2, StreamElement::Idle(true)),
            (1, wm(30)),
            (0, StreamElement::Idle(true)),
            (1, StreamElement::Idle(true)),
            (0, StreamElement::Idle(false)),
            (0, wm(40)),
            (2, StreamElement::End),
            (1, StreamElement::End),
            (0, StreamElement::End),
        ];
        let mut one = WatermarkValve::new(3);
        let mut valves = InputValves::new([3]);
        for (channel, element) in script {
            let expected = emitted(one.input(channel, &element));
            assert_eq!(
                emitted(valves.input(at(0, channel), &element).task),
                expected
            );
        }
        assert_eq!(valves.current(), MAX_WATERMARK);
    }

    #[test]
    fn the_task_watermark_is_the_least_of_its_inputs_and_an_idle_input_does_not_count() {
        let mut valves = InputValves::new([2, 1]);
        let out = valves.input(at(0, 0), &wm(100));
        assert_eq!(
            out.input_watermark, None,
            "channel 1 of input 0 holds it back"
        );
        let out = valves.input(at(0, 1), &wm(80));
        assert_eq!(out.input_watermark, Some(80));
        assert!(out.task.is_empty(), "input 1 has no watermark yet");
        let out = valves.input(at(1, 0), &wm(50));
        assert_eq!(
            (out.input_watermark, emitted(out.task)),
            (Some(50), vec!["Watermark(50)".into()])
        );
        let out = valves.input(at(1, 0), &wm(90));
        assert_eq!(emitted(out.task), vec!["Watermark(80)"]);

        // Input 1 goes idle: input 0 alone moves event time.
        assert!(
            valves
                .input(at(1, 0), &StreamElement::Idle(true))
                .task
                .is_empty()
        );
        valves.input(at(0, 0), &wm(500));
        let out = valves.input(at(0, 1), &wm(400));
        assert_eq!(emitted(out.task), vec!["Watermark(400)"]);
        // Back from idle behind the task's watermark, it holds nothing back until it catches up.
        assert!(
            valves
                .input(at(1, 0), &StreamElement::Idle(false))
                .task
                .is_empty()
        );
        valves.input(at(0, 0), &wm(700));
        let out = valves.input(at(0, 1), &wm(600));
        assert_eq!(emitted(out.task), vec!["Watermark(600)"]);
        let out = valves.input(at(1, 0), &wm(650));
        assert_eq!(out.input_watermark, Some(650));
        valves.input(at(0, 0), &wm(900));
        let out = valves.input(at(0, 1), &wm(900));
        assert_eq!(
            emitted(out.task),
            vec!["Watermark(650)"],
            "caught up, it counts again"
        );
    }

    #[test]
    fn an_input_that_ended_no_longer_holds_the_task_back() {
        let mut valves = InputValves::new([1, 1]);
        valves.input(at(0, 0), &wm(10));
        valves.input(at(1, 0), &wm(20));
        assert_eq!(valves.current(), 10);
        let out = valves.input(at(0, 0), &StreamElement::End);
        assert_eq!(out.input_watermark, Some(MAX_WATERMARK));
        assert_eq!(emitted(out.task), vec!["Watermark(20)"]);
        valves.input(at(1, 0), &StreamElement::End);
        assert_eq!(valves.current(), MAX_WATERMARK);
    }
}
