use spate_api::{MAX_WATERMARK, MIN_WATERMARK, StreamElement, Timestamp};

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
}
