use std::collections::{HashMap, HashSet};
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

/// The counters of one attempt of one subtask, as last seen.
#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    source_records: u64,
    sink_records: u64,
    late_dropped: u64,
}

pub struct Progress {
    roles: Roles,
    last: Option<(Instant, u64)>,
    /// The latest attempt seen of each (vertex, subtask), with its counters.
    attempts: HashMap<(u32, u32), (u32, Counts)>,
    /// What attempts that were restarted since had counted when last seen.
    earlier: Counts,
}

impl Progress {
    pub fn new(roles: Roles) -> Self {
        Progress {
            roles,
            last: None,
            attempts: HashMap::new(),
            earlier: Counts::default(),
        }
    }

    /// The job's totals over every attempt seen: a restarted task's counters start again from
    /// zero (and a JobMaster that replaced another reports only the attempts it knows), so the
    /// counts of attempts that ended are kept here.
    fn totals(&mut self, status: &JobStatus) -> Totals {
        for task in &status.tasks {
            let (Some(id), Some(m)) = (&task.task, &task.metrics) else {
                continue;
            };
            let counts = Counts {
                source_records: if self.roles.sources.contains(&id.vertex) {
                    m.records_in
                } else {
                    0
                },
                sink_records: if self.roles.sinks.contains(&id.vertex) {
                    m.records_in
                } else {
                    0
                },
                late_dropped: m.late_records_dropped,
            };
            match self
                .attempts
                .insert((id.vertex, id.subtask), (id.attempt, counts))
            {
                Some((attempt, old)) if attempt < id.attempt => {
                    self.earlier.source_records += old.source_records;
                    self.earlier.sink_records += old.sink_records;
                    self.earlier.late_dropped += old.late_dropped;
                }
                // An older attempt's late report: keep the newer one.
                Some((attempt, old)) if attempt > id.attempt => {
                    self.attempts
                        .insert((id.vertex, id.subtask), (attempt, old));
                }
                _ => {}
            }
        }
        let mut t = totals(status, &self.roles);
        t.source_records += self.earlier.source_records;
        t.sink_records += self.earlier.sink_records;
        t.late_dropped += self.earlier.late_dropped;
        t
    }

    pub fn line(&mut self, status: &JobStatus) -> String {
        let t = self.totals(status);
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

    pub fn summary(&mut self, status: &JobStatus) -> String {
        let t = self.totals(status);
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
        if self.earlier.source_records + self.earlier.sink_records > 0 {
            text.push_str(
                "\n(the counts add up every attempt: records read again after a restore are \
                 counted again)",
            );
        }
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
    use spate_proto::v1::{TaskId, TaskMetrics, TaskStatus};

    use super::*;

    #[test]
    fn totals_keep_what_restarted_attempts_counted() {
        let mut progress = Progress::new(Roles {
            sources: HashSet::from([0]),
            sinks: HashSet::from([1]),
        });
        let task = |vertex: u32, attempt: u32, records_in: u64| TaskStatus {
            task: Some(TaskId {
                vertex,
                attempt,
                ..TaskId::default()
            }),
            metrics: Some(TaskMetrics {
                records_in,
                ..TaskMetrics::default()
            }),
            ..TaskStatus::default()
        };
        let status = |tasks: Vec<TaskStatus>| JobStatus {
            tasks,
            ..JobStatus::default()
        };
        progress.totals(&status(vec![task(0, 0, 100), task(1, 0, 40)]));
        let t = progress.totals(&status(vec![task(0, 0, 150), task(1, 0, 45)]));
        assert_eq!((t.source_records, t.sink_records), (150, 45));
        // Both restarted: their counters start from zero again.
        let t = progress.totals(&status(vec![task(0, 1, 30), task(1, 1, 10)]));
        assert_eq!((t.source_records, t.sink_records), (150 + 30, 45 + 10));
        assert!(progress.summary(&status(vec![])).contains("counted again"));
    }

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
