//! CPU accounting from /proc: how much of the machine this process used during a phase, and how
//! much the rest of the (shared) machine did, so that a figure taken while other work competed
//! for the two cores says so.

use std::time::Instant;

/// Linux reports process and machine CPU time in clock ticks of 1/100 s on every architecture
/// this runs on (USER_HZ).
const TICKS_PER_SECOND: f64 = 100.0;

/// The name the embedded engine gives its writer thread.
const WRITER_THREAD: &str = "runnel-writer";

#[derive(Debug, Clone, Copy)]
pub(crate) struct CpuSample {
    at: Instant,
    process_ticks: u64,
    writer_ticks: u64,
    machine_busy_ticks: u64,
}

/// CPU use over an interval, in cores (1.0 = one core busy all the time).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CpuUse {
    pub(crate) process_cores: f64,
    /// The engine's writer thread alone: near 1.0, it is the bottleneck.
    pub(crate) writer_cores: f64,
    /// Everything else on the machine (it is shared).
    pub(crate) others_cores: f64,
}

impl CpuSample {
    pub(crate) fn now() -> Self {
        Self {
            at: Instant::now(),
            process_ticks: stat_ticks("/proc/self/stat").unwrap_or(0),
            writer_ticks: writer_thread_ticks().unwrap_or(0),
            machine_busy_ticks: machine_busy_ticks().unwrap_or(0),
        }
    }

    pub(crate) fn until(&self, later: &CpuSample) -> CpuUse {
        let wall = later.at.duration_since(self.at).as_secs_f64().max(1e-9);
        let cores = |ticks: f64| ticks / TICKS_PER_SECOND / wall;
        let process = later.process_ticks.saturating_sub(self.process_ticks) as f64;
        let writer = later.writer_ticks.saturating_sub(self.writer_ticks) as f64;
        let machine = later
            .machine_busy_ticks
            .saturating_sub(self.machine_busy_ticks) as f64;
        CpuUse {
            process_cores: cores(process),
            writer_cores: cores(writer),
            others_cores: cores((machine - process).max(0.0)),
        }
    }
}

/// The CPU ticks of this process's threads named [`WRITER_THREAD`].
fn writer_thread_ticks() -> Option<u64> {
    let mut total = 0;
    for task in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        let path = task.path();
        let is_writer = std::fs::read_to_string(path.join("comm"))
            .is_ok_and(|comm| comm.trim() == WRITER_THREAD);
        if is_writer {
            total += stat_ticks(&path.join("stat").to_string_lossy()).unwrap_or(0);
        }
    }
    Some(total)
}

/// utime + stime (fields 14 and 15) of a /proc `stat` file.
fn stat_ticks(path: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(path).ok()?;
    // The command name (field 2) may hold spaces; the fields after it are plain numbers.
    let after_name = stat.get(stat.rfind(')')? + 2..)?;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Busy ticks of all CPUs (the first line of /proc/stat, less idle and iowait).
fn machine_busy_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?;
    let values: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let busy = [0, 1, 2, 5, 6, 7]
        .iter()
        .filter_map(|&i| values.get(i))
        .sum();
    Some(busy)
}

/// The load averages, as `uptime` shows them.
pub(crate) fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|_| "unknown".to_owned())
}

/// CPU ticks of groups of processes, picked by command name, and of the whole machine: how a
/// phase's CPU split between the server, the load generator and everything else.
#[derive(Debug, Clone)]
pub(crate) struct GroupSample {
    at: Instant,
    /// (pid, group, ticks) of every matching process.
    processes: Vec<(u32, usize, u64)>,
    machine_busy_ticks: u64,
}

/// CPU use of each group over an interval, in cores, and of the rest of the machine.
#[derive(Debug, Clone, Default)]
pub(crate) struct GroupUse {
    pub(crate) cores: Vec<f64>,
    pub(crate) others_cores: f64,
}

impl GroupSample {
    /// Samples every process whose command name is in `groups[i]`.
    pub(crate) fn now(groups: &[&[&str]]) -> Self {
        let mut processes = Vec::new();
        if let Ok(entries) = std::fs::read_dir("/proc") {
            for entry in entries.flatten() {
                let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                    continue;
                };
                let Some((comm, ticks)) = comm_and_ticks(&entry.path().join("stat")) else {
                    continue;
                };
                if let Some(group) = groups.iter().position(|names| names.contains(&&*comm)) {
                    processes.push((pid, group, ticks));
                }
            }
        }
        Self {
            at: Instant::now(),
            processes,
            machine_busy_ticks: machine_busy_ticks().unwrap_or(0),
        }
    }

    /// Per process: what it used since `self`, or all it used if it started in between. A
    /// process that exited in between took its ticks with it (and counts as "others").
    pub(crate) fn until(&self, later: &GroupSample) -> GroupUse {
        let wall = later.at.duration_since(self.at).as_secs_f64().max(1e-9);
        let cores = |ticks: u64| ticks as f64 / TICKS_PER_SECOND / wall;
        let groups = later.processes.iter().map(|p| p.1 + 1).max().unwrap_or(0);
        let mut used = vec![0u64; groups];
        for &(pid, group, ticks) in &later.processes {
            let before = self
                .processes
                .iter()
                .find(|p| p.0 == pid)
                .map_or(0, |p| p.2);
            used[group] += ticks.saturating_sub(before);
        }
        let machine = later
            .machine_busy_ticks
            .saturating_sub(self.machine_busy_ticks);
        GroupUse {
            cores: used.iter().map(|&t| cores(t)).collect(),
            others_cores: cores(machine.saturating_sub(used.iter().sum())),
        }
    }
}

fn comm_and_ticks(path: &std::path::Path) -> Option<(String, u64)> {
    let stat = std::fs::read_to_string(path).ok()?;
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?.to_owned();
    let fields: Vec<&str> = stat.get(close + 2..)?.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((comm, utime + stime))
}
