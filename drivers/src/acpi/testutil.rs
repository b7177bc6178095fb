//! Synthetic physical memory and ACPI table builders for the tests.
//!
//! [`Image`] lays tables out in a fake physical address space with two regions: the low
//! 1 MiB (BDA, EBDA and BIOS area, for the RSDP search) and a table area at [`TABLE_BASE`]
//! followed by zero padding. [`TestHandler`] maps from it and panics on any access outside
//! both regions, so a test also proves the parser never reads where it should not.

use std::cell::Cell;
use std::ptr::NonNull;
use std::rc::Rc;

use ::acpi::{AcpiHandler, PhysicalMapping};

/// Where the table area starts in the fake physical address space.
pub const TABLE_BASE: u64 = 0x7fe0_0000;
/// Zero padding after the last table, so that any table length the parser accepts (up to
/// 1 MiB) stays inside synthetic memory even when it is corrupt.
const PADDING: usize = (1 << 20) + 4096;
const LOW_MEMORY: usize = 0x10_0000;

/// The fake physical memory.
pub struct Memory {
    regions: Vec<(u64, Box<[u8]>)>,
    /// Mappings created and not yet dropped.
    live: Cell<isize>,
    /// Mappings created in total.
    total: Cell<usize>,
}

impl Memory {
    /// A pointer to `len` bytes at `phys`, if they lie inside one region.
    fn locate(&self, phys: u64, len: usize) -> Option<*const u8> {
        self.regions.iter().find_map(|(base, bytes)| {
            let offset = usize::try_from(phys.checked_sub(*base)?).ok()?;
            let end = offset.checked_add(len)?;
            (end <= bytes.len()).then(|| bytes[offset..].as_ptr())
        })
    }
}

/// An [`AcpiHandler`] over [`Memory`].
#[derive(Clone)]
pub struct TestHandler(pub Rc<Memory>);

impl TestHandler {
    /// Mappings not yet unmapped.
    pub fn live_mappings(&self) -> isize {
        self.0.live.get()
    }

    /// Mappings made so far.
    pub fn total_mappings(&self) -> usize {
        self.0.total.get()
    }
}

impl AcpiHandler for TestHandler {
    unsafe fn map_physical_region<T>(&self, phys: usize, size: usize) -> PhysicalMapping<Self, T> {
        let ptr = self
            .0
            .locate(phys as u64, size)
            .unwrap_or_else(|| panic!("read outside synthetic memory: {phys:#x} + {size:#x}"));
        self.0.live.set(self.0.live.get() + 1);
        self.0.total.set(self.0.total.get() + 1);
        let ptr = NonNull::new(ptr.cast_mut().cast::<T>()).expect("region pointers are non-null");
        // SAFETY: `ptr` points at `size` readable bytes inside a boxed slice owned by the
        // `Memory`, which the handler clone stored in the mapping keeps alive; nothing writes
        // to it after construction.
        unsafe { PhysicalMapping::new(phys, ptr, size, size, self.clone()) }
    }

    fn unmap_physical_region<T>(region: &PhysicalMapping<Self, T>) {
        let live = &region.handler().0.live;
        live.set(live.get() - 1);
    }
}

/// A fake physical address space under construction.
pub struct Image {
    tables: Vec<u8>,
    low: Vec<u8>,
}

impl Default for Image {
    fn default() -> Self {
        Self::new()
    }
}

impl Image {
    /// Empty low memory and an empty table area.
    pub fn new() -> Self {
        Self {
            tables: Vec::new(),
            low: vec![0; LOW_MEMORY],
        }
    }

    /// Appends `bytes` to the table area (16-byte aligned) and returns its address.
    pub fn add(&mut self, bytes: &[u8]) -> u64 {
        while !self.tables.len().is_multiple_of(16) {
            self.tables.push(0);
        }
        let address = TABLE_BASE + self.tables.len() as u64;
        self.tables.extend_from_slice(bytes);
        address
    }

    /// Overwrites bytes at physical address `address` (table area or low memory).
    pub fn patch(&mut self, address: u64, bytes: &[u8]) {
        let (area, offset) = if address >= TABLE_BASE {
            (&mut self.tables, (address - TABLE_BASE) as usize)
        } else {
            (&mut self.low, address as usize)
        };
        area[offset..offset + bytes.len()].copy_from_slice(bytes);
    }

    /// Recomputes the checksum of the table at `address` (byte 9 of its header) over its
    /// length field's worth of bytes (at least the header, at most what is in the image).
    pub fn fix_checksum(&mut self, address: u64) {
        let offset = (address - TABLE_BASE) as usize;
        let length = u32::from_le_bytes(self.tables[offset + 4..offset + 8].try_into().unwrap());
        let end = (offset + (length as usize).max(36)).min(self.tables.len());
        let table = &mut self.tables[offset..end];
        table[9] = 0;
        table[9] = checksum_byte(table);
    }

    /// Freezes the image into a handler.
    pub fn handler(mut self) -> TestHandler {
        self.tables.resize(self.tables.len() + PADDING, 0);
        TestHandler(Rc::new(Memory {
            regions: vec![
                (0, self.low.into_boxed_slice()),
                (TABLE_BASE, self.tables.into_boxed_slice()),
            ],
            live: Cell::new(0),
            total: Cell::new(0),
        }))
    }
}

/// The byte that makes `bytes` (with that byte currently 0) sum to zero.
pub fn checksum_byte(bytes: &[u8]) -> u8 {
    0u8.wrapping_sub(bytes.iter().fold(0u8, |s, &b| s.wrapping_add(b)))
}

/// A System Description Table: the 36-byte header (ACPI 6.5 §5.2.6) and `body`, with the
/// length and checksum filled in.
pub fn sdt(signature: &[u8; 4], revision: u8, body: &[u8]) -> Vec<u8> {
    let length = (36 + body.len()) as u32;
    let mut t = Vec::with_capacity(length as usize);
    t.extend_from_slice(signature);
    t.extend_from_slice(&length.to_le_bytes());
    t.push(revision);
    t.push(0); // checksum
    t.extend_from_slice(b"FERROV"); // OEM ID
    t.extend_from_slice(b"TESTTABL"); // OEM table ID
    t.extend_from_slice(&1u32.to_le_bytes()); // OEM revision
    t.extend_from_slice(b"FRVS"); // creator ID
    t.extend_from_slice(&1u32.to_le_bytes()); // creator revision
    t.extend_from_slice(body);
    t[9] = checksum_byte(&t);
    t
}

/// An RSDT listing 32-bit table addresses.
pub fn rsdt(entries: &[u64]) -> Vec<u8> {
    let body: Vec<u8> = entries
        .iter()
        .flat_map(|&a| u32::try_from(a).unwrap().to_le_bytes())
        .collect();
    sdt(b"RSDT", 1, &body)
}

/// An XSDT listing 64-bit table addresses.
pub fn xsdt(entries: &[u64]) -> Vec<u8> {
    let body: Vec<u8> = entries.iter().flat_map(|&a| a.to_le_bytes()).collect();
    sdt(b"XSDT", 1, &body)
}

/// An ACPI 1.0 RSDP (revision 0, 20 bytes).
pub fn rsdp_v1(rsdt: u64) -> Vec<u8> {
    let mut r = Vec::new();
    r.extend_from_slice(b"RSD PTR ");
    r.push(0);
    r.extend_from_slice(b"FERROV");
    r.push(0);
    r.extend_from_slice(&u32::try_from(rsdt).unwrap().to_le_bytes());
    r[8] = checksum_byte(&r);
    r
}

/// An ACPI 2.0+ RSDP (revision 2, 36 bytes) with both checksums.
pub fn rsdp_v2(rsdt: u64, xsdt: u64) -> Vec<u8> {
    let mut r = rsdp_v1(rsdt);
    r[15] = 2;
    r[8] = 0;
    r[8] = checksum_byte(&r[..20]);
    r.extend_from_slice(&36u32.to_le_bytes());
    r.extend_from_slice(&xsdt.to_le_bytes());
    r.extend_from_slice(&[0, 0, 0, 0]);
    r[32] = checksum_byte(&r);
    r
}

/// A Generic Address Structure (ACPI 6.5 §5.2.3.2).
#[derive(Clone, Copy)]
pub struct Gas {
    pub space: u8,
    pub width: u8,
    pub offset: u8,
    pub access: u8,
    pub address: u64,
}

impl Gas {
    pub const EMPTY: Self = Self {
        space: 0,
        width: 0,
        offset: 0,
        access: 0,
        address: 0,
    };

    /// A register in I/O space.
    pub fn io(port: u64, width: u8) -> Self {
        Self {
            space: 1,
            width,
            offset: 0,
            access: 1,
            address: port,
        }
    }

    /// A register in memory.
    pub fn memory(address: u64, width: u8) -> Self {
        Self {
            space: 0,
            width,
            offset: 0,
            access: 3,
            address,
        }
    }

    fn bytes(self) -> [u8; 12] {
        let mut b = [0; 12];
        b[0] = self.space;
        b[1] = self.width;
        b[2] = self.offset;
        b[3] = self.access;
        b[4..].copy_from_slice(&self.address.to_le_bytes());
        b
    }
}

/// Builds an MADT entry by entry.
pub struct MadtBuilder {
    pub revision: u8,
    pub local_apic_address: u32,
    pub flags: u32,
    pub entries: Vec<u8>,
}

impl MadtBuilder {
    /// An empty MADT, revision 5, local APIC at 0xFEE00000, PCAT_COMPAT set.
    pub fn new() -> Self {
        Self {
            revision: 5,
            local_apic_address: 0xfee0_0000,
            flags: 1,
            entries: Vec::new(),
        }
    }

    /// Appends raw bytes (for malformed entries).
    pub fn raw(mut self, bytes: &[u8]) -> Self {
        self.entries.extend_from_slice(bytes);
        self
    }

    /// Type 0, Processor Local APIC (§5.2.12.2).
    pub fn local_apic(self, uid: u8, apic_id: u8, flags: u32) -> Self {
        let mut e = vec![0, 8, uid, apic_id];
        e.extend_from_slice(&flags.to_le_bytes());
        self.raw(&e)
    }

    /// Type 1, I/O APIC (§5.2.12.3).
    pub fn io_apic(self, id: u8, address: u32, gsi_base: u32) -> Self {
        let mut e = vec![1, 12, id, 0];
        e.extend_from_slice(&address.to_le_bytes());
        e.extend_from_slice(&gsi_base.to_le_bytes());
        self.raw(&e)
    }

    /// Type 2, Interrupt Source Override (§5.2.12.5).
    pub fn interrupt_override(self, bus: u8, irq: u8, gsi: u32, flags: u16) -> Self {
        let mut e = vec![2, 10, bus, irq];
        e.extend_from_slice(&gsi.to_le_bytes());
        e.extend_from_slice(&flags.to_le_bytes());
        self.raw(&e)
    }

    /// Type 4, Local APIC NMI (§5.2.12.7).
    pub fn local_apic_nmi(self, uid: u8, flags: u16, lint: u8) -> Self {
        let mut e = vec![4, 6, uid];
        e.extend_from_slice(&flags.to_le_bytes());
        e.push(lint);
        self.raw(&e)
    }

    /// Type 5, Local APIC Address Override (§5.2.12.8).
    pub fn local_apic_override(self, address: u64) -> Self {
        let mut e = vec![5, 12, 0, 0];
        e.extend_from_slice(&address.to_le_bytes());
        self.raw(&e)
    }

    /// Type 9, Processor Local x2APIC (§5.2.12.12).
    pub fn x2apic(self, apic_id: u32, flags: u32, uid: u32) -> Self {
        let mut e = vec![9, 16, 0, 0];
        e.extend_from_slice(&apic_id.to_le_bytes());
        e.extend_from_slice(&flags.to_le_bytes());
        e.extend_from_slice(&uid.to_le_bytes());
        self.raw(&e)
    }

    /// Type 0xA, Local x2APIC NMI (§5.2.12.13).
    pub fn x2apic_nmi(self, uid: u32, flags: u16, lint: u8) -> Self {
        let mut e = vec![0xa, 12];
        e.extend_from_slice(&flags.to_le_bytes());
        e.extend_from_slice(&uid.to_le_bytes());
        e.extend_from_slice(&[lint, 0, 0, 0]);
        self.raw(&e)
    }

    /// The table.
    pub fn build(&self) -> Vec<u8> {
        let mut body = Vec::new();
        body.extend_from_slice(&self.local_apic_address.to_le_bytes());
        body.extend_from_slice(&self.flags.to_le_bytes());
        body.extend_from_slice(&self.entries);
        sdt(b"APIC", self.revision, &body)
    }
}

/// FADT flag bits (ACPI 6.5 §5.2.9, Fixed ACPI Description Table Fixed Feature Flags).
pub const TMR_VAL_EXT: u32 = 1 << 8;
pub const RESET_REG_SUP: u32 = 1 << 10;
pub const HW_REDUCED_ACPI: u32 = 1 << 20;

/// Builds a FADT (ACPI 6.5 §5.2.9) with the fields the parser reads.
pub struct FadtBuilder {
    pub revision: u8,
    /// Total table length: 276 (ACPI 6.0+), 244 (2.0), 116 (1.0), or anything for tests.
    pub length: usize,
    pub pm_tmr_blk: u32,
    pub pm_tmr_len: u8,
    pub flags: u32,
    pub reset_reg: Gas,
    pub reset_value: u8,
    pub x_pm_tmr_blk: Gas,
}

impl FadtBuilder {
    /// An ACPI 6 FADT with a 24-bit PM timer at I/O port 0x608 and nothing else.
    pub fn new() -> Self {
        Self {
            revision: 6,
            length: 276,
            pm_tmr_blk: 0x608,
            pm_tmr_len: 4,
            flags: 0,
            reset_reg: Gas::EMPTY,
            reset_value: 0,
            x_pm_tmr_blk: Gas::EMPTY,
        }
    }

    pub fn build(&self) -> Vec<u8> {
        let mut t = vec![0u8; 276];
        t[76..80].copy_from_slice(&self.pm_tmr_blk.to_le_bytes());
        t[91] = self.pm_tmr_len;
        t[112..116].copy_from_slice(&self.flags.to_le_bytes());
        t[116..128].copy_from_slice(&self.reset_reg.bytes());
        t[128] = self.reset_value;
        t[208..220].copy_from_slice(&self.x_pm_tmr_blk.bytes());
        t.truncate(self.length);
        t.resize(self.length, 0);
        sdt(b"FACP", self.revision, &t[36..])
    }
}

/// An HPET table (IA-PC HPET 1.0a §3.2.4).
pub fn hpet(block_id: u32, base: Gas, number: u8, min_tick: u16, protection: u8) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&block_id.to_le_bytes());
    body.extend_from_slice(&base.bytes());
    body.push(number);
    body.extend_from_slice(&min_tick.to_le_bytes());
    body.push(protection);
    sdt(b"HPET", 1, &body)
}

/// The MADT QEMU's `pc` machine builds for `-smp 4`: four enabled processors, an I/O APIC
/// at 0xFEC00000, IRQ 0 → GSI 2, PCI IRQs 5, 9, 10, 11 level/active-high, LINT1 NMI.
pub fn qemu_madt() -> MadtBuilder {
    MadtBuilder {
        revision: 1,
        ..MadtBuilder::new()
    }
    .local_apic(0, 0, 1)
    .local_apic(1, 1, 1)
    .local_apic(2, 2, 1)
    .local_apic(3, 3, 1)
    .io_apic(0, 0xfec0_0000, 0)
    .interrupt_override(0, 0, 2, 0)
    .interrupt_override(0, 5, 5, 0xd)
    .interrupt_override(0, 9, 9, 0xd)
    .interrupt_override(0, 10, 10, 0xd)
    .interrupt_override(0, 11, 11, 0xd)
    .local_apic_nmi(0xff, 0, 1)
}

/// QEMU's FADT: 24-bit PM timer at port 0x608, reset by writing 0x0F to port 0xCF9.
pub fn qemu_fadt() -> FadtBuilder {
    FadtBuilder {
        flags: RESET_REG_SUP,
        reset_reg: Gas::io(0xcf9, 8),
        reset_value: 0x0f,
        ..FadtBuilder::new()
    }
}

/// QEMU's HPET: 3 comparators, 64-bit counter, legacy replacement, vendor 0x8086.
pub fn qemu_hpet() -> Vec<u8> {
    hpet(0x8086_a201, Gas::memory(0xfed0_0000, 64), 0, 0x80, 0)
}

/// Addresses of the pieces of a standard image.
pub struct Layout {
    pub rsdp: u64,
    pub rsdt: u64,
    pub xsdt: u64,
    pub madt: u64,
    pub fadt: u64,
    pub hpet: u64,
}

/// An image with an ACPI 2.0 RSDP (in the BIOS area at 0xF5A20) pointing at both an RSDT
/// and an XSDT, each listing `fadt`, `madt` and `hpet` (any of which may be `None`).
pub fn standard_image(
    madt: Option<Vec<u8>>,
    fadt: Option<Vec<u8>>,
    hpet: Option<Vec<u8>>,
) -> (Image, Layout) {
    let mut image = Image::new();
    let fadt = fadt.map_or(0, |t| image.add(&t));
    let madt = madt.map_or(0, |t| image.add(&t));
    let hpet = hpet.map_or(0, |t| image.add(&t));
    let entries: Vec<u64> = [fadt, madt, hpet].into_iter().filter(|&a| a != 0).collect();
    let rsdt = image.add(&rsdt(&entries));
    let xsdt = image.add(&xsdt(&entries));
    let rsdp = 0xf_5a20;
    image.patch(rsdp, &rsdp_v2(rsdt, xsdt));
    (
        image,
        Layout {
            rsdp,
            rsdt,
            xsdt,
            madt,
            fadt,
            hpet,
        },
    )
}
