//! The domain manager: which domains exist, building them, and what happens when one
//! ends (xl's `on_poweroff` / `on_reboot` / `on_crash`: `destroy` returns everything,
//! `restart` builds it again, at most [`RESTART_LIMIT`] times within
//! [`RESTART_WINDOW_NS`] so a crash loop cannot starve the host).
//!
//! Domains are described by [`DomainSpec`]s (from configuration modules, or a PVH
//! kernel module with default settings) and started up to a concurrency limit (the
//! `guests` self test runs one per CPU at a time; configured domains all at once).
//! Memory is claimed against the [`Ledger`] before a configured domain is built and
//! released when it is destroyed for good.

use alloc::collections::VecDeque;
use alloc::sync::Arc;
use alloc::vec::Vec;

use ferrovisor::config::Action;
use ferrovisor::reservation::{Ledger, Use};
use ferrovisor::sched::{CpuId, CpuMask, DomainId, SchedParams, VcpuId};
use ferrovisor::vcpu::VcpuInitState;
use ferrovisor_boot::{BoundedStr, Module};
use log::{info, warn};

use super::cpu_loop::{SCHED, wake_if_runnable};
use super::domain::{BuildRequest, Domain, Ending, MAX_VCPUS_PER_DOMAIN};
use super::vcpu::{SLOTS, Vcpu, release_ids, reserve_ids};
use crate::memory::phys_to_virt;

/// Restarts allowed within the window before a restarting domain is destroyed.
pub const RESTART_LIMIT: u32 = 5;
/// The window for [`RESTART_LIMIT`] (nanoseconds of host time).
pub const RESTART_WINDOW_NS: u64 = 60_000_000_000;
/// Most domains with a memory claim at once.
pub const MAX_CLAIMS: usize = 64;

/// Everything needed to build a domain, and again after a restart.
#[derive(Clone)]
pub struct DomainSpec {
    pub id: u16,
    pub name: BoundedStr<64>,
    pub kernel: Module,
    pub cmdline: BoundedStr<1024>,
    pub memory_bytes: u64,
    pub vcpus: u32,
    pub params: SchedParams,
    /// Hard affinity of each vCPU.
    pub affinity: [CpuMask; MAX_VCPUS_PER_DOMAIN],
    pub on_poweroff: Action,
    pub on_reboot: Action,
    pub on_crash: Action,
    /// Its memory is claimed in the ledger (released when it is destroyed for good).
    pub claimed: bool,
}

impl DomainSpec {
    /// A domain of one vCPU with default settings, destroyed when it ends.
    pub fn simple(id: u16, name: &str, kernel: Module, cmdline: &str, memory_bytes: u64) -> Self {
        Self {
            id,
            name: BoundedStr::from_str_truncating(name),
            kernel,
            cmdline: BoundedStr::from_str_truncating(cmdline),
            memory_bytes,
            vcpus: 1,
            params: SchedParams::DEFAULT,
            affinity: [CpuMask::ALL; MAX_VCPUS_PER_DOMAIN],
            on_poweroff: Action::Destroy,
            on_reboot: Action::Destroy,
            on_crash: Action::Destroy,
            claimed: false,
        }
    }
}

struct Live {
    spec: DomainSpec,
    domain: Option<Arc<Domain>>,
    /// What its current incarnation charged to its claim.
    charged: Charges,
    restarts: u32,
    window_start: u64,
}

struct Manager {
    pending: VecDeque<DomainSpec>,
    live: Vec<Live>,
    /// Most domains running at once.
    limit: usize,
    ledger: Option<Ledger<MAX_CLAIMS>>,
    /// Called once no domain is left and none is waiting.
    on_all_ended: Option<fn()>,
    /// Domains kept after they ended (`preserve`), memory and all, until destroyed.
    preserved: Vec<Arc<Domain>>,
    /// Domains being built right now (in neither `pending` nor `live`).
    starting: usize,
    /// New domains start paused (to be unpaused together).
    start_paused: bool,
}

static MANAGER: spin::Mutex<Manager> = spin::Mutex::new(Manager {
    pending: VecDeque::new(),
    live: Vec::new(),
    limit: usize::MAX,
    ledger: None,
    on_all_ended: None,
    preserved: Vec::new(),
    starting: 0,
    start_paused: false,
});

/// Sets how many domains may run at once, whether they start paused (`unpause_all`
/// starts them together), and what to do when all have ended.
pub fn configure(limit: usize, start_paused: bool, on_all_ended: Option<fn()>) {
    let mut m = MANAGER.lock();
    m.limit = limit.max(1);
    m.start_paused = start_paused;
    m.on_all_ended = on_all_ended;
}

/// Installs the memory ledger configured domains claim from.
pub fn set_ledger(ledger: Ledger<MAX_CLAIMS>) {
    MANAGER.lock().ledger = Some(ledger);
}

/// Runs `f` on the ledger (`None` when there is none).
pub fn with_ledger<R>(f: impl FnOnce(&mut Ledger<MAX_CLAIMS>) -> R) -> Option<R> {
    MANAGER.lock().ledger.as_mut().map(f)
}

/// Queues a domain to be started by [`launch`].
pub fn submit(spec: DomainSpec) {
    MANAGER.lock().pending.push_back(spec);
}

/// Makes every online CPU known to the scheduler before domains are placed (each CPU
/// also announces itself when it enters its loop; the second time is harmless).
pub fn scheduler_cpus_up() {
    let now = crate::time::now_ns();
    let mut sched = SCHED.lock();
    for cpu in crate::percpu::all() {
        if cpu.online.load(core::sync::atomic::Ordering::Acquire) {
            let _ = sched.cpu_up(CpuId(cpu.index as u16), now);
        }
    }
}

/// Starts waiting domains while fewer than the limit run; calls the all-ended hook if
/// nothing runs or waits. Builds domains on the calling CPU (zeroing their RAM).
pub fn launch() {
    loop {
        let spec = {
            let mut m = MANAGER.lock();
            if m.live.len() >= m.limit {
                return;
            }
            match m.pending.pop_front() {
                Some(spec) => {
                    m.starting += 1;
                    spec
                }
                None => break,
            }
        };
        let started = start(&spec);
        let mut m = MANAGER.lock();
        m.starting -= 1;
        match started {
            Some((domain, charged)) => m.live.push(Live {
                spec,
                domain: Some(domain),
                charged,
                restarts: 0,
                window_start: crate::time::now_ns(),
            }),
            None => {
                drop(m);
                release_claim(&spec);
            }
        }
    }
    check_all_ended();
}

fn check_all_ended() {
    let hook = {
        let mut m = MANAGER.lock();
        if !m.live.is_empty() || !m.pending.is_empty() || m.starting != 0 {
            return;
        }
        m.on_all_ended.take()
    };
    if let Some(hook) = hook {
        hook();
    }
}

fn release_claim(spec: &DomainSpec) {
    if spec.claimed && with_ledger(|l| l.release(spec.id)).is_some_and(|r| r.is_err()) {
        warn!(
            "domain {} ({}): its memory claim was already released",
            spec.id,
            spec.name.as_str()
        );
    }
}

fn module_bytes(module: &Module) -> &'static [u8] {
    // SAFETY: boot modules are RAM the frame allocator never hands out (they are
    // reserved), covered by the direct map, and nothing writes them.
    unsafe {
        core::slice::from_raw_parts(
            phys_to_virt(module.start) as *const u8,
            module.len() as usize,
        )
    }
}

/// A domain built and not yet started, with its vCPUs.
pub struct Built {
    pub domain: Arc<Domain>,
    pub vcpus: Vec<Vcpu>,
    entry: u64,
    counts: ferrovisor::nested_paging::MappingCounts,
}

/// Builds a domain and its vCPUs; `None` when it could not be (reason logged). The
/// domain is not known to the scheduler yet.
pub fn build(spec: &DomainSpec) -> Option<Built> {
    let (id, name) = (spec.id, spec.name.as_str());
    let vendor = match super::Vendor::detect() {
        Ok(vendor) => vendor,
        Err(why) => {
            warn!("domain {id} ({name}): not created: {why}");
            return None;
        }
    };
    let count = spec.vcpus as usize;
    if count == 0 || count > MAX_VCPUS_PER_DOMAIN {
        warn!("domain {id} ({name}): not created: {count} vCPUs (1 to {MAX_VCPUS_PER_DOMAIN})");
        return None;
    }
    let mut ids = [VcpuId(0); MAX_VCPUS_PER_DOMAIN];
    if reserve_ids(count, &mut ids[..count]).is_none() {
        warn!("domain {id} ({name}): not created: no free vCPU slots for {count} vCPUs");
        return None;
    }
    let ids = &ids[..count];
    let built = Domain::build(&BuildRequest {
        id,
        name,
        image: module_bytes(&spec.kernel),
        cmdline: spec.cmdline.as_str(),
        memory_bytes: spec.memory_bytes,
        vendor,
        vcpu_ids: ids,
    });
    let (domain, entry, counts) = match built {
        Ok(built) => built,
        Err(e) => {
            release_ids(ids);
            warn!("domain {id} ({name}): not created: {e}");
            return None;
        }
    };
    let domain = Arc::new(domain);
    let mut vcpus = Vec::with_capacity(count);
    for (index, &vid) in ids.iter().enumerate() {
        // Secondary vCPUs get their real state from VCPUOP_initialise.
        let state = if index == 0 {
            entry
        } else {
            VcpuInitState::pvh_entry(0, 0)
        };
        match Vcpu::create(&domain, index as u32, vid, &state) {
            Ok(vcpu) => vcpus.push(vcpu),
            Err(e) => {
                drop(vcpus);
                release_ids(ids);
                warn!("domain {id} ({name}): not created: vcpu {index}: {e}");
                return None;
            }
        }
    }
    Some(Built {
        domain,
        vcpus,
        entry: entry.rip,
        counts,
    })
}

/// Pages a domain's incarnation uses, charged to its claim in the ledger.
#[derive(Clone, Copy, Debug, Default)]
struct Charges {
    ram: u64,
    tables: u64,
    other: u64,
}

impl Charges {
    /// Each use with its pages, in the ledger's terms.
    fn items(&self) -> [(Use, u64); 3] {
        [
            (Use::Ram, self.ram),
            (Use::NestedTables, self.tables),
            (Use::Other, self.other),
        ]
    }
}

/// Charges what a built domain uses to its claim (when it has one) and reports its
/// accounting; the charges are returned for `uncharge`.
fn charge(spec: &DomainSpec, built: &Built) -> Charges {
    let charges = Charges {
        ram: built.domain.ram.size() / 4096,
        tables: built.counts.tables,
        other: built.vcpus.iter().map(Vcpu::frames).sum(),
    };
    if !spec.claimed {
        return charges;
    }
    let (id, name) = (spec.id, spec.name.as_str());
    let account = with_ledger(|l| {
        for (what, pages) in charges.items() {
            if let Err(e) = l.charge(id, what, pages) {
                warn!("domain {id} ({name}): accounting: {e:?}");
            }
        }
        l.account(id)
    })
    .flatten();
    if let Some(a) = account {
        info!(
            "domain {id} ({name}): accounting: {} of {} RAM pages, {} nested-table pages, {} other pages; claim {} pages",
            a.owned_pages,
            a.max_pages,
            a.nested_table_pages,
            a.other_pages,
            a.claim.total_pages()
        );
    }
    charges
}

fn uncharge(spec: &DomainSpec, charges: Charges) {
    if !spec.claimed {
        return;
    }
    with_ledger(|l| {
        for (what, pages) in charges.items() {
            if let Err(e) = l.uncharge(spec.id, what, pages) {
                warn!("domain {}: accounting: {e:?}", spec.id);
            }
        }
    });
}

/// Builds a domain, hands it to the scheduler and starts its first vCPU.
fn start(spec: &DomainSpec) -> Option<(Arc<Domain>, Charges)> {
    let built = build(spec)?;
    let charges = charge(spec, &built);
    let Built {
        domain,
        vcpus,
        entry,
        counts,
    } = built;
    info!(
        "domain {} ({}): created on cpu {}: {} MiB RAM, entry {entry:#x}; nested paging {} x 1 GiB, {} x 2 MiB, {} x 4 KiB, {} table pages; {} vCPU(s)",
        spec.id,
        spec.name.as_str(),
        crate::percpu::current().index,
        domain.ram.size() >> 20,
        counts.pages_1g,
        counts.pages_2m,
        counts.pages_4k,
        counts.tables,
        vcpus.len()
    );
    info!(
        "domain {} ({}): uuid {}",
        spec.id,
        spec.name.as_str(),
        domain.uuid
    );
    let now = crate::time::now_ns();
    let dom = DomainId(spec.id);
    let registered = {
        let mut sched = SCHED.lock();
        let mut result = sched.add_domain(dom, spec.params, now);
        for vcpu in &vcpus {
            if result.is_err() {
                break;
            }
            let affinity = spec.affinity[vcpu.index as usize];
            result = sched.add_vcpu(domain.vcpu_id(vcpu.index), dom, affinity, now);
        }
        if result.is_err() {
            for &vid in domain.vcpu_ids() {
                let _ = sched.remove_vcpu(vid);
            }
            let _ = sched.remove_domain(dom);
        }
        result
    };
    if let Err(e) = registered {
        warn!(
            "domain {} ({}): not started: scheduler: {e}",
            spec.id,
            spec.name.as_str()
        );
        drop(vcpus);
        release_ids(domain.vcpu_ids());
        uncharge(spec, charges);
        return None;
    }
    for vcpu in vcpus {
        let id = domain.vcpu_id(vcpu.index);
        *SLOTS[id.0 as usize].lock() = Some(vcpu);
    }
    if MANAGER.lock().start_paused {
        domain.change_state(
            super::domain::DomainState::Running,
            super::domain::DomainState::Paused,
        );
        info!("domain {} ({}): paused", spec.id, spec.name.as_str());
    }
    wake_if_runnable(&domain, 0);
    Some((domain, charges))
}

/// A domain's vCPUs are all gone (`cpu_loop::reap`): apply its `on_*` action, then
/// start whatever may start now.
pub fn domain_stopped(domain: Arc<Domain>) {
    let ending = domain.ending().unwrap_or(Ending::Crashed);
    let (id, name) = (domain.id, domain.name);
    let name = name.as_str();
    // Counted as starting until it is restarted or released, so that the all-ended
    // check on another CPU cannot fire in between.
    let record = {
        let mut m = MANAGER.lock();
        let at = m
            .live
            .iter()
            .position(|l| l.domain.as_ref().is_some_and(|d| Arc::ptr_eq(d, &domain)));
        let record = at.map(|at| m.live.swap_remove(at));
        if record.is_some() {
            m.starting += 1;
        }
        record
    };
    let Some(mut record) = record else {
        drop(domain);
        info!("domain {id} ({name}): destroyed");
        check_all_ended();
        return;
    };
    let (why, action) = match ending {
        Ending::Shutdown(0) => ("poweroff", record.spec.on_poweroff),
        Ending::Shutdown(1) => ("reboot", record.spec.on_reboot),
        Ending::Shutdown(_) | Ending::Crashed => ("crash", record.spec.on_crash),
    };
    record.domain = None;
    if action != Action::Preserve {
        uncharge(&record.spec, record.charged);
    }
    if action == Action::Preserve {
        info!(
            "domain {id} ({name}): preserved (on_{why} = preserve): its memory is kept until it is destroyed"
        );
        let mut m = MANAGER.lock();
        m.preserved.push(domain);
        m.starting -= 1;
        drop(m);
        launch();
        return;
    }
    // The last reference: RAM and nested page tables go back now, before any rebuild.
    drop(domain);
    info!("domain {id} ({name}): destroyed");
    if action == Action::Restart {
        let now = crate::time::now_ns();
        if now - record.window_start > RESTART_WINDOW_NS {
            record.window_start = now;
            record.restarts = 0;
        }
        record.restarts += 1;
        if record.restarts > RESTART_LIMIT {
            warn!(
                "domain {id} ({name}): restarted {RESTART_LIMIT} times within {} s: crash loop, destroying it",
                RESTART_WINDOW_NS / 1_000_000_000
            );
        } else {
            info!(
                "domain {id} ({name}): restarting (on_{why} = restart, {} of {RESTART_LIMIT})",
                record.restarts
            );
            if let Some((domain, charged)) = start(&record.spec) {
                record.domain = Some(domain);
                record.charged = charged;
                let mut m = MANAGER.lock();
                m.live.push(record);
                m.starting -= 1;
                drop(m);
                launch();
                return;
            }
        }
    }
    release_claim(&record.spec);
    MANAGER.lock().starting -= 1;
    launch();
}

/// Destroys every preserved domain, returning its memory and its claim.
pub fn destroy_preserved() {
    loop {
        let Some(domain) = MANAGER.lock().preserved.pop() else {
            return;
        };
        let id = domain.id;
        info!("domain {id} ({}): destroyed", domain.name.as_str());
        drop(domain);
        if with_ledger(|l| l.release(id)).is_some_and(|r| r.is_err()) {
            warn!("domain {id}: its memory claim was already released");
        }
    }
}

/// Finds a live domain by id.
pub fn find(id: u16) -> Option<Arc<Domain>> {
    MANAGER
        .lock()
        .live
        .iter()
        .filter_map(|l| l.domain.clone())
        .find(|d| d.id == id)
}

/// Changes a domain's weight and cap at once (`xl sched-credit2 -d`): the scheduler
/// applies them from its next decision and kicks the CPUs concerned.
pub fn set_sched_params(id: u16, params: SchedParams) -> Result<(), &'static str> {
    find(id).ok_or("no such domain")?;
    let kicks = SCHED
        .lock()
        .set_params(DomainId(id), params, crate::time::now_ns())
        .map_err(|_| "the scheduler refused the parameters")?;
    for cpu in kicks.iter() {
        crate::smp::kick(u32::from(cpu.0));
    }
    info!(
        "domain {id}: weight {} cap {}",
        params.weight, params.cap_percent
    );
    Ok(())
}

/// Pauses a running domain: its vCPUs stop at their CPUs' next decision.
pub fn pause(id: u16) -> Result<(), &'static str> {
    let domain = find(id).ok_or("no such domain")?;
    if !domain.change_state(
        super::domain::DomainState::Running,
        super::domain::DomainState::Paused,
    ) {
        return Err("the domain is not running");
    }
    super::cpu_loop::sleep_all(&domain);
    info!("domain {id} ({}): paused", domain.name.as_str());
    Ok(())
}

/// Unpauses every paused domain.
pub fn unpause_all() {
    let ids: Vec<u16> = MANAGER
        .lock()
        .live
        .iter()
        .filter_map(|l| l.domain.as_ref().map(|d| d.id))
        .collect();
    for id in ids {
        let _ = unpause(id);
    }
}

/// Unpauses a paused domain: its vCPUs that are up and not blocked run again.
pub fn unpause(id: u16) -> Result<(), &'static str> {
    let domain = find(id).ok_or("no such domain")?;
    if !domain.change_state(
        super::domain::DomainState::Paused,
        super::domain::DomainState::Running,
    ) {
        return Err("the domain is not paused");
    }
    for index in 0..domain.vcpu_count {
        wake_if_runnable(&domain, index);
    }
    info!("domain {id} ({}): unpaused", domain.name.as_str());
    Ok(())
}
