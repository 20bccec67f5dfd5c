//! OCI `linux.resources` → the resources of an RTOS partition.
//!
//! The one place where the mapping rules of reference/mica.md ("Resource mapping") live:
//!
//! | OCI | result |
//! |---|---|
//! | `cpu.cpus` | [`Resources::cpu_str`], normalised; CPUs the host lacks are dropped (none left: error); `vcpus` = CPUs left |
//! | `cpu.quota` / `cpu.period` | [`Resources::cpu_cap_percent`] = quota×100/period, at most vcpus×100; without a cpuset `vcpus` = ceil(cap/100) |
//! | `cpu.shares` | [`Resources::cpu_weight`] = shares/4 clamped to [1, 65535]; 256 when unset |
//! | `memory.limit` | [`Resources::memory_mib`] = limit >> 20; `max_memory_mib` = `memory_mib` |
//! | `memory.reservation`, `container.min_memory_mb` | the memory floor (default `[resources] min_memory_mib`, 32) |
//! | `container.max_vcpu_num` | [`Resources::max_vcpus`] (default `[resources] max_vcpus`, 8) |
//!
//! Where the contract is silent, these rules hold (each has a test):
//! - No cpuset and no quota: 1 vCPU, no cap (most RTOS guests want one vCPU).
//! - `quota` ≤ 0 means no cap (−1 is "unlimited" in OCI, 0 is "unset" as in runc);
//!   `period` missing or 0 means the kernel default, 100 000 µs; a `period` without a
//!   positive `quota` is ignored. A tiny quota whose percentage rounds down to 0 becomes
//!   1 %, because a cap of 0 means "uncapped" to Xen.
//! - `shares` 0 means unset (weight 256), as runc treats it.
//! - More vCPUs than the maximum is an error, not a clamp: a silently smaller partition
//!   would hide the mismatch until the RTOS misbehaves.
//! - The floor is the largest of the reservation (rounded up to whole MiB) and the
//!   `min_memory_mb` annotation, or the config's `min_memory_mib` when the annotation is
//!   absent. A limit below the floor is an error; with no limit (absent, 0 or negative)
//!   the memory is the larger of the floor and `[resources] default_memory_mib`.
//! - Every value must fit the i32 fields of micad's create message.
//! - Swap, NUMA (`cpu.mems`), hugepages, `unified` and the other cgroup knobs have no
//!   pedestal equivalent: they are listed in [`Resources::ignored`] for the caller's log
//!   line. The device cgroup list is not listed: containerd always sends one, and an RTOS
//!   partition has no Linux devices to restrict.

use std::collections::BTreeSet;
use std::fmt;

use crate::oci::{LinuxCpu, LinuxMemory, LinuxResources};

use crate::annotations::{Annotations, MAX_VCPU_NUM, MIN_MEMORY_MB};
use crate::config::ResourceConfig;

/// The CPU weight when `cpu.shares` is unset (Xen's default weight).
pub const DEFAULT_CPU_WEIGHT: u32 = 256;
/// The CPU weight range of the pedestals (Xen credit scheduler).
pub const CPU_WEIGHT_RANGE: (u32, u32) = (1, 65535);
/// The CFS period assumed when a quota comes without one (the kernel default), µs.
pub const DEFAULT_CPU_PERIOD_US: u64 = 100_000;
/// The largest CPU number a cpuset may name (Linux's largest `NR_CPUS`, 8192, minus one).
pub const MAX_CPU_ID: u32 = 8191;

const MIB_SHIFT: u32 = 20;
/// Upper bound of every value: they travel in i32 fields of micad's create message.
const WIRE_MAX: u64 = i32::MAX as u64;

/// A set of CPU numbers, as in a Linux cpuset list (`0-3,5`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CpuSet(BTreeSet<u32>);

impl CpuSet {
    /// CPUs `0..count`: a host whose CPUs are numbered without gaps.
    pub fn first(count: u32) -> CpuSet {
        CpuSet((0..count).collect())
    }

    /// Parses a cpuset list: comma-separated CPU numbers and inclusive ranges `a-b`
    /// (`a` ≤ `b`), blanks around items and numbers allowed, CPU numbers up to
    /// [`MAX_CPU_ID`]. The empty list (or only blanks) is the empty set. The error says
    /// what is wrong with which item.
    pub fn parse(text: &str) -> Result<CpuSet, String> {
        let mut set = BTreeSet::new();
        if text.trim().is_empty() {
            return Ok(CpuSet(set));
        }
        for item in text.split(',') {
            let item = item.trim();
            if item.is_empty() {
                return Err("empty item between commas".to_owned());
            }
            let (first, last) = match item.split_once('-') {
                Some((first, last)) => (cpu_number(first)?, cpu_number(last)?),
                None => {
                    let cpu = cpu_number(item)?;
                    (cpu, cpu)
                }
            };
            if first > last {
                return Err(format!(
                    "range {} runs backwards",
                    crate::error::quote(item)
                ));
            }
            set.extend(first..=last);
        }
        Ok(CpuSet(set))
    }

    /// How many CPUs the set holds.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `cpu` is in the set.
    pub fn contains(&self, cpu: u32) -> bool {
        self.0.contains(&cpu)
    }

    /// The CPUs in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.0.iter().copied()
    }
}

fn cpu_number(text: &str) -> Result<u32, String> {
    let text = text.trim();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{} is not a CPU number", crate::error::quote(text)));
    }
    match text.parse::<u32>() {
        Ok(cpu) if cpu <= MAX_CPU_ID => Ok(cpu),
        _ => Err(format!(
            "CPU {text} is beyond the largest CPU number {MAX_CPU_ID}"
        )),
    }
}

/// The normalised cpuset list: ascending, every run of consecutive CPUs as a range
/// (`1-3,5,7-8`); the empty set is the empty string.
impl fmt::Display for CpuSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut cpus = self.iter().peekable();
        let mut first_item = true;
        while let Some(start) = cpus.next() {
            let mut end = start;
            while cpus.peek() == Some(&(end + 1)) {
                end += 1;
                cpus.next();
            }
            if !first_item {
                f.write_str(",")?;
            }
            first_item = false;
            if start == end {
                write!(f, "{start}")?;
            } else {
                write!(f, "{start}-{end}")?;
            }
        }
        Ok(())
    }
}

/// The resources of one RTOS partition, ready for a pedestal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resources {
    /// vCPUs at start.
    pub vcpus: u32,
    /// The most vCPUs the partition may grow to (Xen `maxvcpus`).
    pub max_vcpus: u32,
    /// The physical CPUs the partition may run on, normalised (`1-3,5`); `None` = any.
    pub cpu_str: Option<String>,
    /// CPU cap in percent of one CPU (Xen `cap`); `None` = uncapped.
    pub cpu_cap_percent: Option<u32>,
    /// Relative CPU weight (Xen `cpu_weight`), 1 to 65535.
    pub cpu_weight: u32,
    /// Memory at start, MiB.
    pub memory_mib: u32,
    /// Maximum memory, MiB; equal to `memory_mib` (ARM64 Xen has no populate-on-demand).
    pub max_memory_mib: u32,
    /// CPUs of the requested cpuset that the host lacks, dropped (for a warning).
    pub dropped_cpus: Vec<u32>,
    /// OCI resource settings that were present but have no pedestal equivalent.
    pub ignored: Vec<&'static str>,
}

/// Short summary for a log line: `vcpus=2/8 cpus=1-2 cap=150% weight=256 memory=64MiB`.
impl fmt::Display for Resources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "vcpus={}/{}", self.vcpus, self.max_vcpus)?;
        write!(f, " cpus={}", self.cpu_str.as_deref().unwrap_or("any"))?;
        match self.cpu_cap_percent {
            Some(cap) => write!(f, " cap={cap}%")?,
            None => f.write_str(" cap=none")?,
        }
        write!(
            f,
            " weight={} memory={}MiB",
            self.cpu_weight, self.memory_mib
        )?;
        if !self.dropped_cpus.is_empty() {
            let dropped: Vec<String> = self.dropped_cpus.iter().map(u32::to_string).collect();
            write!(f, " dropped-cpus={}", dropped.join(","))?;
        }
        if !self.ignored.is_empty() {
            write!(f, " ignored={}", self.ignored.join(","))?;
        }
        Ok(())
    }
}

/// Why the resources cannot be mapped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResourceError {
    /// `cpu.cpus` does not parse.
    #[error(
        "invalid cpuset {} in linux.resources.cpu.cpus: {reason} (expected e.g. \"0-1,3\")",
        crate::error::quote(.value)
    )]
    InvalidCpuset {
        /// The cpuset as given.
        value: String,
        /// What is wrong.
        reason: String,
    },
    /// None of the cpuset's CPUs exist on the host.
    #[error("cpuset {requested} names no CPU this host has (host CPUs: {host}); pick CPUs from the host's set")]
    NoHostCpus {
        /// The requested cpuset, normalised.
        requested: String,
        /// The host's CPUs.
        host: String,
    },
    /// More vCPUs are needed than allowed.
    #[error("the container needs {vcpus} vCPUs ({reason}) but at most {max} are allowed ({max_from}); ask for fewer CPUs or raise the maximum")]
    TooManyVcpus {
        /// vCPUs needed.
        vcpus: u64,
        /// What asked for them (the cpuset or the quota).
        reason: String,
        /// The maximum.
        max: u32,
        /// Where the maximum comes from.
        max_from: &'static str,
    },
    /// The memory limit is below the floor.
    #[error("memory below the floor: the limit gives {memory_mib} MiB but the floor is {floor_mib} MiB ({floor_from}); raise the memory limit or lower the floor")]
    MemoryBelowFloor {
        /// Memory from the limit, MiB.
        memory_mib: u64,
        /// The floor, MiB.
        floor_mib: u64,
        /// Where the floor comes from.
        floor_from: &'static str,
    },
    /// A memory size is negative (other than −1, "unlimited" in OCI).
    #[error(
        "{what} is {value} (as an unsigned number {}): a memory size cannot be negative; \
         give bytes (e.g. 67108864 for 64 MiB), or -1 or 0 for no limit",
        *.value as u64
    )]
    NegativeMemory {
        /// Which setting.
        what: &'static str,
        /// The value as given.
        value: i64,
    },
    /// A memory value is larger than the pedestal can take.
    #[error(
        "memory of {memory_mib} MiB ({what}) is more than a pedestal takes (at most {} MiB)",
        i32::MAX
    )]
    MemoryTooLarge {
        /// The value, MiB.
        memory_mib: u64,
        /// Which setting.
        what: &'static str,
    },
}

/// Maps a container's `linux.resources` (absent → the defaults) to partition resources.
///
/// `host_cpus` are the physical CPUs the pedestal can place partitions on (the caller
/// reads them: dom0's online CPUs are not Xen's physical CPUs); `limits` is the config's
/// `[resources]` section. Annotations override `limits` where they speak.
pub fn map_resources(
    linux: Option<&LinuxResources>,
    annotations: &Annotations,
    host_cpus: &CpuSet,
    limits: &ResourceConfig,
) -> Result<Resources, ResourceError> {
    let cpu = linux.and_then(|r| r.cpu.as_ref());
    let memory = linux.and_then(|r| r.memory.as_ref());

    let (max_vcpus, max_from) = match annotations.max_vcpus {
        Some(max) => (max, MAX_VCPU_NUM),
        None => (
            limits.max_vcpus,
            "[resources] max_vcpus in the micrun config",
        ),
    };

    // cpuset → cpu_str and vcpus.
    let mut cpus = None;
    let mut dropped_cpus = Vec::new();
    if let Some(text) = cpu.and_then(|c| c.cpus.as_deref()) {
        let requested = CpuSet::parse(text).map_err(|reason| ResourceError::InvalidCpuset {
            value: text.to_owned(),
            reason,
        })?;
        if !requested.is_empty() {
            let (kept, dropped): (BTreeSet<u32>, BTreeSet<u32>) =
                requested.iter().partition(|&c| host_cpus.contains(c));
            if kept.is_empty() {
                return Err(ResourceError::NoHostCpus {
                    requested: requested.to_string(),
                    host: host_cpus.to_string(),
                });
            }
            dropped_cpus = dropped.into_iter().collect();
            cpus = Some(CpuSet(kept));
        }
    }

    // quota/period → cap; vcpus from the cpuset, else from the cap, else 1.
    let raw_cap = cpu.and_then(cap_percent);
    let (vcpus, cpu_cap_percent, vcpu_reason) = match (&cpus, raw_cap) {
        (Some(set), cap) => {
            let vcpus = set.len() as u64;
            let cap = cap.map(|cap| cap.min(vcpus * 100));
            (vcpus, cap, format!("cpuset {set}"))
        }
        (None, Some(cap)) => (
            cap.div_ceil(100),
            Some(cap),
            format!("cpu quota of {cap}% of one CPU"),
        ),
        (None, None) => (1, None, "the default".to_owned()),
    };
    if vcpus > u64::from(max_vcpus) {
        return Err(ResourceError::TooManyVcpus {
            vcpus,
            reason: vcpu_reason,
            max: max_vcpus,
            max_from,
        });
    }
    // vcpus ≤ max_vcpus, a u32. The cap is at most about max_vcpus × 100; it saturates at
    // the wire's i32 bound only for maxima beyond 21 million vCPUs.
    let vcpus = vcpus as u32;
    let cpu_cap_percent = cpu_cap_percent.map(|cap| cap.min(WIRE_MAX) as u32);

    let cpu_weight = match cpu.and_then(|c| c.shares) {
        None | Some(0) => DEFAULT_CPU_WEIGHT,
        Some(shares) => {
            (shares / 4).clamp(u64::from(CPU_WEIGHT_RANGE.0), u64::from(CPU_WEIGHT_RANGE.1)) as u32
        }
    };

    let memory_mib = map_memory(memory, annotations, limits)?;

    Ok(Resources {
        vcpus,
        max_vcpus,
        cpu_str: cpus.map(|set| set.to_string()),
        cpu_cap_percent,
        cpu_weight,
        memory_mib,
        max_memory_mib: memory_mib,
        dropped_cpus,
        ignored: linux.map(ignored).unwrap_or_default(),
    })
}

/// quota×100/period in percent, at least 1; `None` when there is no positive quota.
fn cap_percent(cpu: &LinuxCpu) -> Option<u64> {
    let quota = u64::try_from(cpu.quota?).ok().filter(|&q| q > 0)?;
    let period = match cpu.period {
        None | Some(0) => DEFAULT_CPU_PERIOD_US,
        Some(period) => period,
    };
    let cap = u128::from(quota) * 100 / u128::from(period);
    Some(u64::try_from(cap).unwrap_or(u64::MAX).max(1))
}

fn map_memory(
    memory: Option<&LinuxMemory>,
    annotations: &Annotations,
    limits: &ResourceConfig,
) -> Result<u32, ResourceError> {
    let (mut floor, mut floor_from) = match annotations.min_memory_mib {
        Some(min) => (u64::from(min), MIN_MEMORY_MB),
        None => (
            u64::from(limits.min_memory_mib),
            "[resources] min_memory_mib in the micrun config",
        ),
    };
    // −1 is "unlimited" and 0 "unset", as runc reads them; any other negative value is a
    // mistake (ctr's `--memory-limit 18446744073709551614` arrives as −2), not a default.
    for (what, value) in [
        ("linux.resources.memory.limit", memory.and_then(|m| m.limit)),
        (
            "linux.resources.memory.reservation",
            memory.and_then(|m| m.reservation),
        ),
    ] {
        if let Some(value) = value.filter(|&v| v < -1) {
            return Err(ResourceError::NegativeMemory { what, value });
        }
    }
    let positive =
        |value: Option<i64>| value.and_then(|v| u64::try_from(v).ok()).filter(|&v| v > 0);
    if let Some(reservation) = positive(memory.and_then(|m| m.reservation)) {
        let reserved_mib = reservation.div_ceil(1 << MIB_SHIFT);
        if reserved_mib > floor {
            floor = reserved_mib;
            floor_from = "linux.resources.memory.reservation";
        }
    }
    let memory_mib = match positive(memory.and_then(|m| m.limit)) {
        Some(limit) => {
            let memory_mib = limit >> MIB_SHIFT;
            if memory_mib < floor {
                return Err(ResourceError::MemoryBelowFloor {
                    memory_mib,
                    floor_mib: floor,
                    floor_from,
                });
            }
            if memory_mib > WIRE_MAX {
                return Err(ResourceError::MemoryTooLarge {
                    memory_mib,
                    what: "linux.resources.memory.limit",
                });
            }
            memory_mib
        }
        None => {
            if floor > WIRE_MAX {
                return Err(ResourceError::MemoryTooLarge {
                    memory_mib: floor,
                    what: floor_from,
                });
            }
            floor.max(u64::from(limits.default_memory_mib))
        }
    };
    // Both branches checked the bound (the config's default is checked when loaded, and
    // clamped here for a hand-built config).
    Ok(memory_mib.min(WIRE_MAX) as u32)
}

/// The present settings that have no pedestal equivalent.
fn ignored(resources: &LinuxResources) -> Vec<&'static str> {
    let mut out = Vec::new();
    if let Some(memory) = &resources.memory {
        for (present, name) in [
            (memory.swap.is_some(), "memory.swap"),
            (memory.kernel.is_some(), "memory.kernel"),
            (memory.kernel_tcp.is_some(), "memory.kernelTCP"),
            (memory.swappiness.is_some(), "memory.swappiness"),
            (
                memory.disable_oom_killer.is_some(),
                "memory.disableOOMKiller",
            ),
        ] {
            if present {
                out.push(name);
            }
        }
    }
    if let Some(cpu) = &resources.cpu {
        for (present, name) in [
            (
                cpu.mems.as_deref().is_some_and(|m| !m.trim().is_empty()),
                "cpu.mems (NUMA)",
            ),
            (cpu.realtime_runtime.is_some(), "cpu.realtimeRuntime"),
            (cpu.realtime_period.is_some(), "cpu.realtimePeriod"),
            (cpu.idle.is_some(), "cpu.idle"),
            (cpu.burst.is_some(), "cpu.burst"),
        ] {
            if present {
                out.push(name);
            }
        }
    }
    for (present, name) in [
        (
            resources
                .hugepage_limits
                .as_ref()
                .is_some_and(|h| !h.is_empty()),
            "hugepageLimits",
        ),
        (
            resources.unified.as_ref().is_some_and(|u| !u.is_empty()),
            "unified",
        ),
        (resources.pids.is_some(), "pids"),
        (resources.block_io.is_some(), "blockIO"),
        (resources.network.is_some(), "network"),
        (resources.rdma.is_some(), "rdma"),
    ] {
        if present {
            out.push(name);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: i64 = 1 << 20;

    /// One row of the mapping table: OCI input (and annotations) → expected result.
    #[derive(Default, Clone)]
    struct Case {
        name: &'static str,
        cpus: Option<&'static str>,
        quota: Option<i64>,
        period: Option<u64>,
        shares: Option<u64>,
        limit: Option<i64>,
        reservation: Option<i64>,
        min_memory_mb: Option<u32>,
        max_vcpu_num: Option<u32>,
    }

    /// Expected result: `(vcpus, max_vcpus, cpu_str, cap, weight, memory)`.
    type Expected = (u32, u32, Option<&'static str>, Option<u32>, u32, u32);

    fn resources_of(case: &Case) -> LinuxResources {
        LinuxResources {
            cpu: Some(LinuxCpu {
                cpus: case.cpus.map(str::to_owned),
                quota: case.quota,
                period: case.period,
                shares: case.shares,
                ..LinuxCpu::default()
            }),
            memory: Some(LinuxMemory {
                limit: case.limit,
                reservation: case.reservation,
                ..LinuxMemory::default()
            }),
            ..LinuxResources::default()
        }
    }

    fn run(case: &Case) -> Result<Resources, ResourceError> {
        let annotations = Annotations {
            min_memory_mib: case.min_memory_mb,
            max_vcpus: case.max_vcpu_num,
            ..Annotations::default()
        };
        map_resources(
            Some(&resources_of(case)),
            &annotations,
            &CpuSet::first(8),
            &ResourceConfig::default(),
        )
    }

    #[test]
    fn mapping_table() {
        let c = Case::default;
        let cases: Vec<(Case, Expected)> = vec![
            // Nothing set: 1 vCPU, no cap, weight 256, default memory 64 MiB.
            (
                Case {
                    name: "defaults",
                    ..c()
                },
                (1, 8, None, None, 256, 64),
            ),
            // cpu.cpus → cpu_str, vcpus = CPUs in the set.
            (
                Case {
                    name: "cpuset range+list",
                    cpus: Some("0-1,3"),
                    ..c()
                },
                (3, 8, Some("0-1,3"), None, 256, 64),
            ),
            (
                Case {
                    name: "cpuset blanks",
                    cpus: Some(" 2 "),
                    ..c()
                },
                (1, 8, Some("2"), None, 256, 64),
            ),
            (
                Case {
                    name: "cpuset normalised",
                    cpus: Some("5,1-3,2"),
                    ..c()
                },
                (4, 8, Some("1-3,5"), None, 256, 64),
            ),
            (
                Case {
                    name: "cpuset empty = unset",
                    cpus: Some(""),
                    ..c()
                },
                (1, 8, None, None, 256, 64),
            ),
            (
                Case {
                    name: "cpuset host lacks some",
                    cpus: Some("6-9"),
                    ..c()
                },
                (2, 8, Some("6-7"), None, 256, 64),
            ),
            // quota/period → cap; without cpuset vcpus = ceil(cap/100).
            (
                Case {
                    name: "quota 1.5 CPUs",
                    quota: Some(150_000),
                    period: Some(100_000),
                    ..c()
                },
                (2, 8, None, Some(150), 256, 64),
            ),
            (
                Case {
                    name: "quota half CPU",
                    quota: Some(50_000),
                    period: Some(100_000),
                    ..c()
                },
                (1, 8, None, Some(50), 256, 64),
            ),
            (
                Case {
                    name: "quota exactly 2",
                    quota: Some(200_000),
                    period: Some(100_000),
                    ..c()
                },
                (2, 8, None, Some(200), 256, 64),
            ),
            (
                Case {
                    name: "quota without period",
                    quota: Some(25_000),
                    ..c()
                },
                (1, 8, None, Some(25), 256, 64),
            ),
            (
                Case {
                    name: "period 0 = default",
                    quota: Some(300_000),
                    period: Some(0),
                    ..c()
                },
                (3, 8, None, Some(300), 256, 64),
            ),
            (
                Case {
                    name: "negative quota = unlimited",
                    quota: Some(-1),
                    period: Some(100_000),
                    ..c()
                },
                (1, 8, None, None, 256, 64),
            ),
            (
                Case {
                    name: "quota 0 = unset",
                    quota: Some(0),
                    ..c()
                },
                (1, 8, None, None, 256, 64),
            ),
            (
                Case {
                    name: "period without quota",
                    period: Some(50_000),
                    ..c()
                },
                (1, 8, None, None, 256, 64),
            ),
            (
                Case {
                    name: "tiny quota is 1%",
                    quota: Some(1),
                    period: Some(1_000_000),
                    ..c()
                },
                (1, 8, None, Some(1), 256, 64),
            ),
            // cap at most vcpus × 100 when a cpuset fixes vcpus.
            (
                Case {
                    name: "cap clamped by cpuset",
                    cpus: Some("0-1"),
                    quota: Some(400_000),
                    period: Some(100_000),
                    ..c()
                },
                (2, 8, Some("0-1"), Some(200), 256, 64),
            ),
            (
                Case {
                    name: "cap under cpuset",
                    cpus: Some("0-3"),
                    quota: Some(50_000),
                    period: Some(100_000),
                    ..c()
                },
                (4, 8, Some("0-3"), Some(50), 256, 64),
            ),
            // shares → weight = shares/4 in [1, 65535]; 256 unset.
            (
                Case {
                    name: "shares 1024",
                    shares: Some(1024),
                    ..c()
                },
                (1, 8, None, None, 256, 64),
            ),
            (
                Case {
                    name: "shares 0 = unset",
                    shares: Some(0),
                    ..c()
                },
                (1, 8, None, None, 256, 64),
            ),
            (
                Case {
                    name: "shares 2 → 1",
                    shares: Some(2),
                    ..c()
                },
                (1, 8, None, None, 1, 64),
            ),
            (
                Case {
                    name: "shares 262144 → 65535",
                    shares: Some(262_144),
                    ..c()
                },
                (1, 8, None, None, 65535, 64),
            ),
            (
                Case {
                    name: "shares 512",
                    shares: Some(512),
                    ..c()
                },
                (1, 8, None, None, 128, 64),
            ),
            // memory.limit >> 20, max_memory = memory.
            (
                Case {
                    name: "limit 128 MiB",
                    limit: Some(128 * MIB),
                    ..c()
                },
                (1, 8, None, None, 256, 128),
            ),
            (
                Case {
                    name: "limit rounds down",
                    limit: Some(48 * MIB + 12345),
                    ..c()
                },
                (1, 8, None, None, 256, 48),
            ),
            (
                Case {
                    name: "limit equals floor",
                    limit: Some(32 * MIB),
                    ..c()
                },
                (1, 8, None, None, 256, 32),
            ),
            (
                Case {
                    name: "limit -1 = unlimited",
                    limit: Some(-1),
                    ..c()
                },
                (1, 8, None, None, 256, 64),
            ),
            (
                Case {
                    name: "limit 0 = unlimited",
                    limit: Some(0),
                    ..c()
                },
                (1, 8, None, None, 256, 64),
            ),
            // floor: reservation / min_memory_mb / config, default 32.
            (
                Case {
                    name: "annotation floor, no limit",
                    min_memory_mb: Some(96),
                    ..c()
                },
                (1, 8, None, None, 256, 96),
            ),
            (
                Case {
                    name: "annotation lowers floor",
                    min_memory_mb: Some(8),
                    limit: Some(16 * MIB),
                    ..c()
                },
                (1, 8, None, None, 256, 16),
            ),
            (
                Case {
                    name: "reservation floor, no limit",
                    reservation: Some(100 * MIB + 1),
                    ..c()
                },
                (1, 8, None, None, 256, 101),
            ),
            (
                Case {
                    name: "reservation under limit",
                    reservation: Some(40 * MIB),
                    limit: Some(64 * MIB),
                    ..c()
                },
                (1, 8, None, None, 256, 64),
            ),
            // max vcpus: default 8, annotation max_vcpu_num.
            (
                Case {
                    name: "max from annotation",
                    max_vcpu_num: Some(2),
                    cpus: Some("0-1"),
                    ..c()
                },
                (2, 2, Some("0-1"), None, 256, 64),
            ),
            (
                Case {
                    name: "max raised",
                    max_vcpu_num: Some(16),
                    quota: Some(1_000_000),
                    ..c()
                },
                (10, 16, None, Some(1000), 256, 64),
            ),
            (
                Case {
                    name: "at the max",
                    cpus: Some("0-7"),
                    ..c()
                },
                (8, 8, Some("0-7"), None, 256, 64),
            ),
        ];
        for (case, expected) in cases {
            let got = run(&case).unwrap_or_else(|err| panic!("{}: {err}", case.name));
            let got_tuple = (
                got.vcpus,
                got.max_vcpus,
                got.cpu_str.as_deref(),
                got.cpu_cap_percent,
                got.cpu_weight,
                got.memory_mib,
            );
            assert_eq!(got_tuple, expected, "{}", case.name);
            assert_eq!(got.max_memory_mib, got.memory_mib, "{}", case.name);
        }
    }

    #[test]
    fn errors() {
        let c = Case::default;
        let cases: Vec<(Case, &str)> = vec![
            (Case { name: "backwards range", cpus: Some("3-1"), ..c() }, "invalid cpuset \"3-1\" in linux.resources.cpu.cpus: range \"3-1\" runs backwards"),
            (Case { name: "letters", cpus: Some("a"), ..c() }, "invalid cpuset \"a\" in linux.resources.cpu.cpus: \"a\" is not a CPU number"),
            (Case { name: "empty item", cpus: Some("1,,2"), ..c() }, "empty item between commas"),
            (Case { name: "trailing comma", cpus: Some("1,"), ..c() }, "empty item between commas"),
            (Case { name: "open range", cpus: Some("2-"), ..c() }, "\"\" is not a CPU number"),
            (Case { name: "stride", cpus: Some("0-7:2"), ..c() }, "\"7:2\" is not a CPU number"),
            (Case { name: "sign", cpus: Some("+1"), ..c() }, "\"+1\" is not a CPU number"),
            (Case { name: "huge cpu", cpus: Some("0-4294967295"), ..c() }, "CPU 4294967295 is beyond the largest CPU number 8191"),
            (Case { name: "no host cpu", cpus: Some("8-9"), ..c() }, "cpuset 8-9 names no CPU this host has (host CPUs: 0-7)"),
            (Case { name: "cpuset over max", cpus: Some("0-3"), max_vcpu_num: Some(2), ..c() }, "needs 4 vCPUs (cpuset 0-3) but at most 2 are allowed (org.openeuler.micrun.container.max_vcpu_num)"),
            (Case { name: "quota over max", quota: Some(900_000), ..c() }, "needs 9 vCPUs (cpu quota of 900% of one CPU) but at most 8 are allowed ([resources] max_vcpus in the micrun config)"),
            (Case { name: "absurd quota", quota: Some(i64::MAX), period: Some(1), ..c() }, "at most 8 are allowed"),
            (Case { name: "limit below default floor", limit: Some(16 * MIB), ..c() }, "memory below the floor: the limit gives 16 MiB but the floor is 32 MiB ([resources] min_memory_mib in the micrun config)"),
            (Case { name: "limit below annotation floor", limit: Some(64 * MIB), min_memory_mb: Some(65), ..c() }, "floor is 65 MiB (org.openeuler.micrun.container.min_memory_mb)"),
            (Case { name: "limit below reservation", limit: Some(64 * MIB), reservation: Some(65 * MIB), ..c() }, "floor is 65 MiB (linux.resources.memory.reservation)"),
            (Case { name: "limit under 1 MiB", limit: Some(1000), ..c() }, "the limit gives 0 MiB"),
            (Case { name: "limit too large", limit: Some(i64::MAX), ..c() }, "linux.resources.memory.limit) is more than a pedestal takes"),
            (Case { name: "reservation too large", reservation: Some(i64::MAX), ..c() }, "(linux.resources.memory.reservation) is more than a pedestal takes"),
            (Case { name: "ctr --memory-limit 18446744073709551614", limit: Some(-2), ..c() }, "linux.resources.memory.limit is -2 (as an unsigned number 18446744073709551614): a memory size cannot be negative"),
            (Case { name: "limit -5", limit: Some(-5), ..c() }, "linux.resources.memory.limit is -5"),
            (Case { name: "reservation -5", reservation: Some(-5), ..c() }, "linux.resources.memory.reservation is -5"),
            (Case { name: "long cpuset quoted short", cpus: Some(Box::leak("1,".repeat(5120).into_boxed_str())), ..c() }, "…\" (10240 bytes in all) in linux.resources.cpu.cpus"),
        ];
        for (case, expected) in cases {
            let err = match run(&case) {
                Ok(res) => panic!("{}: accepted as {res}", case.name),
                Err(err) => err.to_string(),
            };
            assert!(err.contains(expected), "{}: {err}", case.name);
        }
    }

    #[test]
    fn no_resources_at_all() {
        let res = map_resources(
            None,
            &Annotations::default(),
            &CpuSet::first(4),
            &ResourceConfig::default(),
        )
        .unwrap();
        assert_eq!(
            res,
            Resources {
                vcpus: 1,
                max_vcpus: 8,
                cpu_str: None,
                cpu_cap_percent: None,
                cpu_weight: 256,
                memory_mib: 64,
                max_memory_mib: 64,
                dropped_cpus: vec![],
                ignored: vec![],
            }
        );
        assert_eq!(
            res.to_string(),
            "vcpus=1/8 cpus=any cap=none weight=256 memory=64MiB"
        );
    }

    #[test]
    fn config_limits_apply() {
        let limits = ResourceConfig {
            min_memory_mib: 40,
            default_memory_mib: 200,
            max_vcpus: 2,
        };
        let res = map_resources(None, &Annotations::default(), &CpuSet::first(4), &limits).unwrap();
        assert_eq!((res.max_vcpus, res.memory_mib), (2, 200));

        let resources = LinuxResources {
            memory: Some(LinuxMemory {
                limit: Some(39 * MIB),
                ..LinuxMemory::default()
            }),
            ..LinuxResources::default()
        };
        let err = map_resources(
            Some(&resources),
            &Annotations::default(),
            &CpuSet::first(4),
            &limits,
        )
        .unwrap_err();
        assert!(matches!(
            err,
            ResourceError::MemoryBelowFloor {
                memory_mib: 39,
                floor_mib: 40,
                ..
            }
        ));
        // A floor above the default memory wins when there is no limit.
        let annotations = Annotations {
            min_memory_mib: Some(300),
            ..Annotations::default()
        };
        let res = map_resources(None, &annotations, &CpuSet::first(4), &limits).unwrap();
        assert_eq!(res.memory_mib, 300);
    }

    #[test]
    fn dropped_cpus_are_reported() {
        let case = Case {
            cpus: Some("2,6-9,12"),
            ..Case::default()
        };
        let res = run(&case).unwrap();
        assert_eq!(res.cpu_str.as_deref(), Some("2,6-7"));
        assert_eq!(res.vcpus, 3);
        assert_eq!(res.dropped_cpus, [8, 9, 12]);
        assert!(res.to_string().contains("dropped-cpus=8,9,12"), "{res}");
        // A host with holes in its numbering.
        let host = CpuSet::parse("0,2,4").unwrap();
        let resources = LinuxResources {
            cpu: Some(LinuxCpu {
                cpus: Some("0-3".to_owned()),
                ..LinuxCpu::default()
            }),
            ..LinuxResources::default()
        };
        let res = map_resources(
            Some(&resources),
            &Annotations::default(),
            &host,
            &ResourceConfig::default(),
        )
        .unwrap();
        assert_eq!(res.cpu_str.as_deref(), Some("0,2"));
        assert_eq!(res.dropped_cpus, [1, 3]);
    }

    /// `linux.resources` from its OCI JSON, as in config.json or an update request.
    fn from_json(json: &str) -> LinuxResources {
        serde_json::from_str(json).unwrap_or_else(|e| panic!("{json}: {e}"))
    }

    /// An update request carries `linux.resources` as JSON and goes through the same
    /// mapping (service.rs `update`): a negative limit is refused there too.
    #[test]
    fn update_with_a_negative_limit_is_refused() {
        for (json, value) in [
            (r#"{"memory": {"limit": -5}}"#, "-5"),
            (
                r#"{"memory": {"limit": -2}}"#,
                "-2 (as an unsigned number 18446744073709551614)",
            ),
        ] {
            let err = map_resources(
                Some(&from_json(json)),
                &Annotations::default(),
                &CpuSet::first(2),
                &ResourceConfig::default(),
            )
            .unwrap_err();
            assert_eq!(
                err,
                ResourceError::NegativeMemory {
                    what: "linux.resources.memory.limit",
                    value: value[..2].parse().unwrap(),
                }
            );
            assert!(
                err.to_string()
                    .starts_with(&format!("linux.resources.memory.limit is {value}")),
                "{err}"
            );
        }
    }

    fn ignored_of(resources: &LinuxResources) -> Vec<&'static str> {
        map_resources(
            Some(resources),
            &Annotations::default(),
            &CpuSet::first(2),
            &ResourceConfig::default(),
        )
        .unwrap()
        .ignored
    }

    #[test]
    fn ignored_settings_are_listed() {
        let resources = from_json(
            r#"{
                "memory": {"limit": 67108864, "swap": 134217728, "swappiness": 10},
                "cpu": {"cpus": "0", "mems": "0", "realtimeRuntime": 1000},
                "hugepageLimits": [{"pageSize": "2MB", "limit": 0}],
                "unified": {"memory.high": "1M"},
                "pids": {"limit": 10}
            }"#,
        );
        let res = map_resources(
            Some(&resources),
            &Annotations::default(),
            &CpuSet::first(2),
            &ResourceConfig::default(),
        )
        .unwrap();
        assert_eq!(
            res.ignored,
            [
                "memory.swap",
                "memory.swappiness",
                "cpu.mems (NUMA)",
                "cpu.realtimeRuntime",
                "hugepageLimits",
                "unified",
                "pids"
            ]
        );
        assert!(res
            .to_string()
            .ends_with("ignored=memory.swap,memory.swappiness,cpu.mems (NUMA),cpu.realtimeRuntime,hugepageLimits,unified,pids"));
        // Every knob without a pedestal equivalent, by its OCI name.
        let everything = from_json(
            r#"{
                "memory": {"kernel": 1, "kernelTCP": 1, "disableOOMKiller": true},
                "cpu": {"realtimePeriod": 1000, "idle": 1, "burst": 10},
                "blockIO": {"weight": 10},
                "network": {"classID": 1},
                "rdma": {"mlx5_0": {"hcaHandles": 1}}
            }"#,
        );
        assert_eq!(
            ignored_of(&everything),
            [
                "memory.kernel",
                "memory.kernelTCP",
                "memory.disableOOMKiller",
                "cpu.realtimePeriod",
                "cpu.idle",
                "cpu.burst",
                "blockIO",
                "network",
                "rdma"
            ]
        );
        // Empty or blank values, nulls, the settings micrun maps, and the device list
        // containerd always sends are not reported.
        let quiet = from_json(
            r#"{
                "devices": [{"allow": false, "access": "rwm"}],
                "memory": {"limit": 67108864, "reservation": 0, "swap": null},
                "cpu": {"shares": 1024, "quota": 0, "period": 100000, "mems": " "},
                "hugepageLimits": [],
                "unified": {},
                "pids": null
            }"#,
        );
        assert!(ignored_of(&quiet).is_empty(), "{:?}", ignored_of(&quiet));
    }

    #[test]
    fn cpuset_parse_and_display() {
        for (text, shown) in [
            ("", ""),
            ("   ", ""),
            ("0", "0"),
            ("0-1,3", "0-1,3"),
            (" 2 ", "2"),
            ("1 - 3 , 5", "1-3,5"),
            ("3,2,1,0", "0-3"),
            ("0-3,2-5", "0-5"),
            ("7,5", "5,7"),
            ("0-0", "0"),
            ("8191", "8191"),
        ] {
            let set = CpuSet::parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
            assert_eq!(set.to_string(), shown, "{text:?}");
        }
        for bad in [
            "a", "3-1", "1,,2", ",", "-", "1-2-3", "8192", "0x1", "1;2", "1 2",
        ] {
            assert!(CpuSet::parse(bad).is_err(), "{bad:?} accepted");
        }
        let set = CpuSet::first(3);
        assert_eq!(set.len(), 3);
        assert!(set.contains(2) && !set.contains(3));
        assert!(CpuSet::first(0).is_empty());
    }
}
