//! I/O APICs: known and fully masked at boot (82093AA I/O APIC datasheet §3.2; ACPI
//! MADT type 1). Ferrovisor takes no device interrupts yet; masking every redirection
//! entry makes sure firmware leftovers cannot deliver interrupts nobody handles.
//! Routing device interrupts to guests arrives with passthrough work.

/// Register indices behind IOREGSEL/IOWIN.
const REG_VERSION: u32 = 0x01;
const REG_REDIRECTION_BASE: u32 = 0x10;
/// Redirection-entry mask bit (low dword, bit 16).
const RTE_MASKED: u32 = 1 << 16;

/// One I/O APIC, reached through its (uncached) MMIO window.
pub struct IoApic {
    mmio: u64,
}

impl IoApic {
    /// # Safety
    /// `mmio` must be the virtual address of this I/O APIC's register window, mapped
    /// uncached and at least 0x20 bytes long, used by nothing else.
    pub unsafe fn new(mmio: u64) -> Self {
        Self { mmio }
    }

    fn read(&self, index: u32) -> u32 {
        // SAFETY: (for this and the read below) IOREGSEL at +0x00 and IOWIN at +0x10
        // are the window's two registers (`new`'s contract); selecting then reading
        // a register has no other effect.
        unsafe { core::ptr::write_volatile(self.mmio as *mut u32, index) };
        // SAFETY: see above.
        unsafe { core::ptr::read_volatile((self.mmio + 0x10) as *const u32) }
    }

    fn write(&self, index: u32, value: u32) {
        // SAFETY: (for this and the write below) as in `read`; the written registers
        // belong to this I/O APIC, which the hypervisor owns.
        unsafe { core::ptr::write_volatile(self.mmio as *mut u32, index) };
        // SAFETY: see above.
        unsafe { core::ptr::write_volatile((self.mmio + 0x10) as *mut u32, value) };
    }

    /// Number of redirection entries (pins): max index in version bits 23:16, plus one.
    pub fn pins(&self) -> u32 {
        ((self.read(REG_VERSION) >> 16) & 0xff) + 1
    }

    /// Masks every pin; returns how many.
    pub fn mask_all(&self) -> u32 {
        let pins = self.pins();
        for pin in 0..pins {
            let index = REG_REDIRECTION_BASE + 2 * pin;
            self.write(index, self.read(index) | RTE_MASKED);
        }
        pins
    }
}
