use std::collections::HashSet;
use std::time::Instant;

use spate_api::MIN_WATERMARK;
use spate_graph::JobGraph;
use spate_proto::v1::{JobState, JobStatus, TaskState};

/// Which vertices read sources and which end in sinks, to sum the right tasks' counters.
pub struct Roles {
    sources: HashSet<u32>,
    sinks: HashSet<u32>,
}

impl Roles {
    pub fn of(graph: &JobGraph) -> Self {
        Roles {
            sources: graph
                .vertices
                .iter()
                .filter(|v| graph.node(v.nodes[0]).is_source())
                .map(|v| v.id)
                .collect(),
            sinks: graph
                .vertices
                .iter()
                .filter(|v| graph.outputs(v.id).next().is_none())
                .map(|v| v.id)
                .collect(),
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Totals {
    pub source_records: u64,
    pub sink_records: u64,
    pub late_dropped: u64,
    pub watermark: Option<i64>,
}

pub fn totals(status: &JobStatus, roles: &Roles) -> Totals {
    let mut totals = Totals::default();
    for task in &status.tasks {
        let (Some(id), Some(m)) = (&task.task, &task.metrics) else {
            continue;
        };
        if roles.sources.contains(&id.vertex) {
            totals.source_records += m.records_in;
        }
        if roles.sinks.contains(&id.vertex) {
            totals.sink_records += m.records_in;
            if m.watermark > MIN_WATERMARK {
                totals.watermark =
                    Some(totals.watermark.map_or(m.watermark, |w| w.min(m.watermark)));
            }
        }
        totals.late_dropped += m.late_records_dropped;
    }
    totals
}

pub struct Progress {
    roles: Roles,
    last: Option<(Instant, u64)>,
}

impl Progress {
    pub fn new(roles: Roles) -> Self {
        Progress { roles, last: None }
    }

    pub fn line(&mut self, status: &JobStatus) -> String {
        let t = totals(status, &self.roles);
        let now = Instant::now();
        // The first reading has no previous one: the average since the job started.
        let rate = match self.last {
            Some((at, n)) => {
                t.source_records.saturating_sub(n) as f64
                    / now.duration_since(at).as_secs_f64().max(1e-3)
            }
            None => t.source_records as f64 / (status.running_ms as f64 / 1000.0).max(1e-3),
        };
        self.last = Some((now, t.source_records));
        let state = JobState::try_from(status.state)
            .map_or("?".into(), |s| format!("{s:?}").to_uppercase());
        let running = status
            .tasks
            .iter()
            .filter(|t| t.state == TaskState::Running as i32)
            .count();
        format!(
            "[{:>6.1}s] {state:9} in {} rec ({}/s)  out {} rec  watermark {}  late {}  tasks {running}/{} running   ",
            status.running_ms as f64 / 1000.0,
            human(t.source_records as f64),
            human(rate),
            human(t.sink_records as f64),
            t.watermark.map_or("-".into(), format_watermark),
            t.late_dropped,
            status.tasks.len(),
        )
    }

    pub fn summary(&self, status: &JobStatus) -> String {
        let t = totals(status, &self.roles);
        let seconds = status.running_ms as f64 / 1000.0;
        let state = JobState::try_from(status.state)
            .map_or("?".into(), |s| format!("{s:?}").to_uppercase());
        let mut text = format!(
            "job {} {state} after {seconds:.2}s: {} records read ({}/s), {} records into the last stage, {} late records dropped",
            status.job_id,
            t.source_records,
            human(t.source_records as f64 / seconds.max(1e-3)),
            t.sink_records,
            t.late_dropped
        );
        if !status.failure.is_empty() {
            text.push_str(&format!("\ncause: {}", status.failure));
        }
        text
    }
}

pub fn human(value: f64) -> String {
    match value {
        v if v >= 1e9 => format!("{:.2}G", v / 1e9),
        v if v >= 1e6 => format!("{:.2}M", v / 1e6),
        v if v >= 1e3 => format!("{:.1}K", v / 1e3),
        v => format!("{v:.0}"),
    }
}

/// Event time as UTC `YYYY-MM-DD hh:mm:ss.mmm`; the end of event time as `END`.
pub fn format_watermark(millis: i64) -> String {
    if millis == i64::MAX {
        return "END".into();
    }
    let (days, ms) = (millis.div_euclid(86_400_000), millis.rem_euclid(86_400_000));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}.{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watermarks_print_as_utc_dates() {
        assert_eq!(format_watermark(0), "1970-01-01 00:00:00.000");
        assert_eq!(
            format_watermark(1_700_000_000_123),
            "2023-11-14 22:13:20.123"
        );
        assert_eq!(format_watermark(951_782_400_000), "2000-02-29 00:00:00.000");
        assert_eq!(format_watermark(i64::MAX), "END");
    }
}
