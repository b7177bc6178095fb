//! The synthesized CPU topology: one package of `nr_vcpus` cores, one thread per core.
//!
//! The host's topology says nothing true about a guest (vCPUs float across host CPUs),
//! so every topology field is rewritten. APIC IDs have `core_bits(nr_vcpus)` bits of core
//! ID and no SMT bits (SDM Vol. 3A 10.12.8 / 9.9 "Identifying topology").

use super::CpuidResult;

/// Bits of the APIC ID that number cores: `ceil(log2(nr_vcpus))`, 0 for one vCPU.
pub(super) fn core_bits(nr_vcpus: u32) -> u32 {
    if nr_vcpus <= 1 {
        0
    } else {
        u32::BITS - (nr_vcpus - 1).leading_zeros()
    }
}

/// Leaf 1 `EBX[23:16]`: addressable logical processor IDs in the package, `2^core_bits`,
/// saturated to the 8-bit field.
pub(super) fn logical_ids_per_package(nr_vcpus: u32) -> u32 {
    (1u32 << core_bits(nr_vcpus)).min(0xFF)
}

/// Intel leaf 4 (deterministic cache parameters): the host's cache geometry, with
/// `EAX[31:26]` (addressable core IDs in the package, minus 1) from the synthesized
/// topology and `EAX[25:14]` (addressable IDs sharing the cache, minus 1) saying that
/// level-1 and level-2 caches are private to a core and level 3 and above are shared by
/// the package. Null descriptors (type 0) end the list and are passed unchanged.
pub(super) fn leaf4(host: CpuidResult, nr_vcpus: u32) -> CpuidResult {
    if host.eax & 0x1F == 0 {
        return host;
    }
    let ids = 1u32 << core_bits(nr_vcpus);
    let level = (host.eax >> 5) & 0x7;
    let sharing = if level >= 3 { (ids - 1).min(0xFFF) } else { 0 };
    let cores = (ids - 1).min(0x3F);
    let eax = (host.eax & 0x3FFF) | (sharing << 14) | (cores << 26);
    CpuidResult { eax, ..host }
}

/// Leaf 0xB (extended topology, SDM Vol. 2A CPUID leaf 0BH): level 0 is SMT (one thread,
/// shift 0), level 1 is core (`nr_vcpus` logical processors, shift `core_bits`), higher
/// sub-leaves are invalid (type 0, `ECX[7:0]` echoes the sub-leaf). EDX is always the
/// x2APIC ID.
pub(super) fn leaf_0b(subleaf: u32, nr_vcpus: u32, apic_id: u32) -> CpuidResult {
    const SMT: u32 = 1;
    const CORE: u32 = 2;
    let level = subleaf & 0xFF;
    let (eax, ebx, ecx) = match level {
        0 => (0, 1, (SMT << 8) | level),
        1 => (
            core_bits(nr_vcpus),
            nr_vcpus.clamp(1, 0xFFFF),
            (CORE << 8) | level,
        ),
        _ => (0, 0, level),
    };
    CpuidResult {
        eax,
        ebx,
        ecx,
        edx: apic_id,
    }
}

/// AMD leaf 0x80000008 ECX (APM Vol. 3 E.4.7): NC `[7:0]` = cores in the package minus 1,
/// ApicIdSize `[15:12]` = APIC ID bits that number cores; PerfTscSize 0.
pub(super) fn amd_ext8_ecx(nr_vcpus: u32) -> u32 {
    (nr_vcpus.clamp(1, 256) - 1) | (core_bits(nr_vcpus) << 12)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_bits_is_ceil_log2() {
        let cases = [
            (0, 0),
            (1, 0),
            (2, 1),
            (3, 2),
            (4, 2),
            (5, 3),
            (8, 3),
            (9, 4),
            (128, 7),
        ];
        for (n, bits) in cases {
            assert_eq!(core_bits(n), bits, "{n}");
        }
        assert_eq!(logical_ids_per_package(3), 4);
        assert_eq!(logical_ids_per_package(256), 0xFF);
    }

    #[test]
    fn amd_nc_and_apic_id_size() {
        assert_eq!(amd_ext8_ecx(1), 0);
        assert_eq!(amd_ext8_ecx(6), 5 | (3 << 12));
    }
}
