//! Tests of ACPI discovery against synthetic tables.

use super::testutil::*;
use super::*;

/// Runs discovery and checks that every mapping it made was released.
fn run(handler: &TestHandler, rsdp: Option<u64>) -> Result<Platform, AcpiError> {
    // SAFETY: the test handler maps any range inside its synthetic memory and panics (failing
    // the test) instead of faulting on anything else.
    let result = unsafe { discover(handler.clone(), rsdp) };
    assert_eq!(handler.live_mappings(), 0, "a mapping was leaked");
    result
}

/// Discovery through the standard image's RSDP.
fn discover_standard(
    madt: Option<Vec<u8>>,
    fadt: Option<Vec<u8>>,
    hpet: Option<Vec<u8>>,
) -> Result<Platform, AcpiError> {
    let (image, layout) = standard_image(madt, fadt, hpet);
    run(&image.handler(), Some(layout.rsdp))
}

/// Discovery of an image with only `madt`.
fn discover_madt(madt: &MadtBuilder) -> Result<Platform, AcpiError> {
    discover_standard(Some(madt.build()), None, None)
}

fn apic_ids(platform: &Platform) -> Vec<u32> {
    platform.usable_cpus().map(|c| c.apic_id).collect()
}

fn cpu(apic_id: u32, uid: u32, enabled: bool, online_capable: bool, x2: bool) -> CpuDescription {
    CpuDescription {
        apic_id,
        processor_uid: uid,
        enabled,
        online_capable,
        x2apic_entry: x2,
    }
}

#[test]
fn qemu_like_four_cpus() {
    let (image, layout) = standard_image(
        Some(qemu_madt().build()),
        Some(qemu_fadt().build()),
        Some(qemu_hpet()),
    );
    let handler = image.handler();
    let p = run(&handler, Some(layout.rsdp)).unwrap();

    assert_eq!(
        p.cpus,
        (0..4)
            .map(|i| cpu(i, i, true, false, false))
            .collect::<Vec<_>>()
    );
    assert_eq!(apic_ids(&p), [0, 1, 2, 3]);
    assert_eq!(
        p.io_apics,
        [IoApicDescription {
            id: 0,
            address: 0xfec0_0000,
            gsi_base: 0
        }]
    );
    assert_eq!(p.interrupt_overrides.len(), 5);
    assert_eq!(
        p.interrupt_overrides[0],
        InterruptOverride {
            isa_irq: 0,
            gsi: 2,
            polarity: Polarity::BusDefault,
            trigger: TriggerMode::BusDefault
        }
    );
    assert_eq!(
        p.interrupt_overrides[2],
        InterruptOverride {
            isa_irq: 9,
            gsi: 9,
            polarity: Polarity::ActiveHigh,
            trigger: TriggerMode::Level
        }
    );
    assert_eq!(
        p.local_apic_nmis,
        [LocalApicNmi {
            processor_uid: None,
            lint: 1,
            polarity: Polarity::BusDefault,
            trigger: TriggerMode::BusDefault
        }]
    );
    assert_eq!(p.local_apic_address, 0xfee0_0000);
    assert!(p.legacy_pics);
    assert_eq!(
        p.pm_timer,
        Some(PmTimer {
            location: RegisterLocation::Io(0x608),
            bits: 24
        })
    );
    assert_eq!(
        p.reset_register,
        Some(ResetRegister {
            location: RegisterLocation::Io(0xcf9),
            value: 0x0f
        })
    );
    assert_eq!(
        p.hpet,
        Some(HpetDescription {
            base_address: 0xfed0_0000,
            hpet_number: 0,
            min_tick: 0x80,
            comparators: 3,
            counter_64bit: true,
            legacy_replacement: true,
            pci_vendor_id: 0x8086,
            page_protection: 0,
        })
    );
    assert_eq!(
        p.source,
        Source::Acpi {
            rsdp_address: layout.rsdp,
            revision: 2,
            root: Signature::XSDT
        }
    );
    assert_eq!(p.warnings, []);

    // The BIOS-area search finds the same RSDP.
    assert_eq!(run(&handler, None).unwrap(), p);

    // ISA routing with bus defaults resolved.
    let route = |irq| {
        let r = p.isa_irq(irq);
        (r.gsi, r.polarity, r.trigger)
    };
    assert_eq!(route(0), (2, Polarity::ActiveHigh, TriggerMode::Edge));
    assert_eq!(route(4), (4, Polarity::ActiveHigh, TriggerMode::Edge));
    assert_eq!(route(11), (11, Polarity::ActiveHigh, TriggerMode::Level));
}

#[test]
fn x2apic_only_entries() {
    let madt = MadtBuilder::new()
        .x2apic(0, 1, 0)
        .x2apic(1, 1, 1)
        .x2apic(0x100, 1, 2)
        .x2apic(0xffff_ffff, 1, 3)
        .x2apic_nmi(0xffff_ffff, 0b0101, 1)
        .x2apic_nmi(2, 0, 0);
    let p = discover_madt(&madt).unwrap();
    assert_eq!(
        p.cpus,
        [
            cpu(0, 0, true, false, true),
            cpu(1, 1, true, false, true),
            cpu(0x100, 2, true, false, true),
        ]
    );
    assert_eq!(
        p.local_apic_nmis,
        [
            LocalApicNmi {
                processor_uid: None,
                lint: 1,
                polarity: Polarity::ActiveHigh,
                trigger: TriggerMode::Edge
            },
            LocalApicNmi {
                processor_uid: Some(2),
                lint: 0,
                polarity: Polarity::BusDefault,
                trigger: TriggerMode::BusDefault
            },
        ]
    );
    assert_eq!(
        p.warnings,
        [Warning::InvalidApicId {
            processor_uid: 3,
            apic_id: 0xffff_ffff
        }]
    );
}

#[test]
fn disabled_and_online_capable_cpus() {
    let madt = MadtBuilder::new() // revision 5
        .local_apic(0, 0, 0b01) // enabled
        .local_apic(1, 1, 0b10) // disabled, online capable
        .local_apic(2, 2, 0b00) // disabled, not capable
        .local_apic(3, 3, 0b11) // enabled; online capable is reserved then
        .x2apic(300, 0b10, 4) // disabled, online capable
        .x2apic(301, 0b00, 5); // disabled, not capable
    let p = discover_madt(&madt).unwrap();
    assert_eq!(
        p.cpus,
        [
            cpu(0, 0, true, false, false),
            cpu(1, 1, false, true, false),
            cpu(2, 2, false, false, false),
            cpu(3, 3, true, false, false),
            cpu(300, 4, false, true, true),
            cpu(301, 5, false, false, true),
        ]
    );
    assert_eq!(apic_ids(&p), [0, 1, 3, 300]);
    assert_eq!(p.warnings, []);

    // Before MADT revision 5 the Online Capable bit is reserved and ignored.
    let old = MadtBuilder {
        revision: 4,
        ..madt
    };
    let p = discover_madt(&old).unwrap();
    assert_eq!(apic_ids(&p), [0, 3]);
    assert!(p.cpus.iter().all(|c| !c.online_capable));
}

#[test]
fn no_usable_cpu_is_an_error() {
    let madt = MadtBuilder::new().local_apic(0, 0, 0).x2apic(5, 0, 1);
    assert_eq!(discover_madt(&madt), Err(AcpiError::NoCpus));
    // Only invalid IDs.
    let madt = MadtBuilder::new().local_apic(0, 0xff, 1);
    assert_eq!(discover_madt(&madt), Err(AcpiError::NoCpus));
    // No processor entries at all.
    let madt = MadtBuilder::new().io_apic(0, 0xfec0_0000, 0);
    assert_eq!(discover_madt(&madt), Err(AcpiError::NoCpus));
}

#[test]
fn xapic_id_0xff_is_invalid() {
    let madt = MadtBuilder::new()
        .local_apic(0, 0, 1)
        .local_apic(7, 0xff, 1);
    let p = discover_madt(&madt).unwrap();
    assert_eq!(apic_ids(&p), [0]);
    assert_eq!(
        p.warnings,
        [Warning::InvalidApicId {
            processor_uid: 7,
            apic_id: 0xff
        }]
    );
}

#[test]
fn duplicate_apic_ids_warn() {
    let madt = MadtBuilder::new()
        .local_apic(0, 0, 1)
        .local_apic(1, 1, 1)
        .local_apic(2, 1, 1);
    let p = discover_madt(&madt).unwrap();
    assert_eq!(apic_ids(&p), [0, 1]);
    assert_eq!(p.cpu_by_apic_id(1).unwrap().processor_uid, 1);
    assert_eq!(
        p.warnings,
        [Warning::DuplicateApicId {
            apic_id: 1,
            kept_uid: 1,
            dropped_uid: 2
        }]
    );

    // An enabled entry replaces an earlier disabled one with the same ID.
    let madt = MadtBuilder::new()
        .local_apic(0, 0, 1)
        .local_apic(5, 3, 0)
        .local_apic(6, 3, 1);
    let p = discover_madt(&madt).unwrap();
    assert_eq!(apic_ids(&p), [0, 3]);
    assert_eq!(p.cpu_by_apic_id(3).unwrap().processor_uid, 6);
    assert_eq!(
        p.warnings,
        [Warning::DuplicateApicId {
            apic_id: 3,
            kept_uid: 6,
            dropped_uid: 5
        }]
    );

    // The same processor listed as both xAPIC and x2APIC: the first entry is kept.
    let madt = MadtBuilder::new().local_apic(0, 0, 1).x2apic(0, 1, 0);
    let p = discover_madt(&madt).unwrap();
    assert_eq!(p.cpus, [cpu(0, 0, true, false, false)]);
    assert_eq!(p.warnings.len(), 1);
}

#[test]
fn rsdp_v1_uses_rsdt() {
    let mut image = Image::new();
    let madt = image.add(&qemu_madt().build());
    let rsdt = image.add(&rsdt(&[madt]));
    image.patch(0xe_0000, &rsdp_v1(rsdt));
    let handler = image.handler();
    let p = run(&handler, None).unwrap();
    assert_eq!(
        p.source,
        Source::Acpi {
            rsdp_address: 0xe_0000,
            revision: 0,
            root: Signature::RSDT
        }
    );
    assert_eq!(apic_ids(&p), [0, 1, 2, 3]);
    // No FADT, no HPET: simply absent.
    assert_eq!((p.pm_timer, p.reset_register, p.hpet), (None, None, None));
}

#[test]
fn xsdt_only_like_qemu_microvm() {
    let mut image = Image::new();
    let madt = image.add(&qemu_madt().build());
    let root = image.add(&xsdt(&[madt]));
    let rsdp = image.add(&rsdp_v2(0, root));
    let p = run(&image.handler(), Some(rsdp)).unwrap();
    assert_eq!(
        p.source,
        Source::Acpi {
            rsdp_address: rsdp,
            revision: 2,
            root: Signature::XSDT
        }
    );
    assert_eq!(p.cpus.len(), 4);
}

#[test]
fn revision2_without_xsdt_uses_rsdt() {
    let mut image = Image::new();
    let madt = image.add(&qemu_madt().build());
    let rsdt = image.add(&rsdt(&[madt]));
    let rsdp = image.add(&rsdp_v2(rsdt, 0));
    let p = run(&image.handler(), Some(rsdp)).unwrap();
    assert!(matches!(
        p.source,
        Source::Acpi {
            root: Signature::RSDT,
            ..
        }
    ));

    // Neither root table.
    let mut image = Image::new();
    let rsdp = image.add(&rsdp_v2(0, 0));
    assert_eq!(
        run(&image.handler(), Some(rsdp)),
        Err(AcpiError::InvalidRsdp {
            address: rsdp,
            problem: RsdpProblem::NoRootTable
        })
    );
}

#[test]
fn broken_xsdt_falls_back_to_rsdt() {
    let (mut image, layout) = standard_image(Some(qemu_madt().build()), None, None);
    image.patch(layout.xsdt + 9, &[0x55]); // checksum byte
    let p = run(&image.handler(), Some(layout.rsdp)).unwrap();
    assert!(matches!(
        p.source,
        Source::Acpi {
            root: Signature::RSDT,
            ..
        }
    ));
    assert_eq!(
        p.warnings,
        [Warning::UsedRsdtInsteadOfXsdt(AcpiError::InvalidTable {
            signature: Signature::XSDT,
            address: layout.xsdt,
            problem: TableProblem::BadChecksum
        })]
    );
}

#[test]
fn bad_checksums_are_errors() {
    // RSDP: first checksum.
    let (mut image, layout) = standard_image(Some(qemu_madt().build()), None, None);
    image.patch(layout.rsdp + 8, &[0]);
    assert_eq!(
        run(&image.handler(), Some(layout.rsdp)),
        Err(AcpiError::InvalidRsdp {
            address: layout.rsdp,
            problem: RsdpProblem::BadChecksum
        })
    );

    // RSDP: extended checksum.
    let (mut image, layout) = standard_image(Some(qemu_madt().build()), None, None);
    image.patch(layout.rsdp + 32, &[0x12]);
    assert_eq!(
        run(&image.handler(), Some(layout.rsdp)),
        Err(AcpiError::InvalidRsdp {
            address: layout.rsdp,
            problem: RsdpProblem::BadExtendedChecksum
        })
    );

    // XSDT with no RSDT to fall back to.
    let mut image = Image::new();
    let madt = image.add(&qemu_madt().build());
    let root = image.add(&xsdt(&[madt]));
    image.patch(root + 40, &[1]); // corrupt the entry, not the checksum
    let rsdp = image.add(&rsdp_v2(0, root));
    assert_eq!(
        run(&image.handler(), Some(rsdp)),
        Err(AcpiError::InvalidTable {
            signature: Signature::XSDT,
            address: root,
            problem: TableProblem::BadChecksum
        })
    );

    // MADT.
    let (mut image, layout) = standard_image(Some(qemu_madt().build()), None, None);
    image.patch(layout.madt + 50, &[0xee]);
    let error = run(&image.handler(), Some(layout.rsdp)).unwrap_err();
    assert_eq!(
        error,
        AcpiError::InvalidTable {
            signature: Signature::MADT,
            address: layout.madt,
            problem: TableProblem::BadChecksum
        }
    );
    assert_eq!(
        error.to_string(),
        format!(
            "ACPI APIC table at {:#x} is invalid: bad checksum",
            layout.madt
        )
    );
}

#[test]
fn invalid_copy_is_skipped_for_a_valid_one() {
    let mut image = Image::new();
    let bad = image.add(&qemu_madt().build());
    image.patch(bad + 9, &[0]);
    image.patch(bad + 60, &[0x77]);
    let good = image.add(&MadtBuilder::new().local_apic(0, 9, 1).build());
    let root = image.add(&xsdt(&[bad, good]));
    let rsdp = image.add(&rsdp_v2(0, root));
    let p = run(&image.handler(), Some(rsdp)).unwrap();
    assert_eq!(apic_ids(&p), [9]);
    assert_eq!(
        p.warnings,
        [Warning::TableSkipped(AcpiError::InvalidTable {
            signature: Signature::MADT,
            address: bad,
            problem: TableProblem::BadChecksum
        })]
    );
}

/// Each of these would make `acpi::madt::MadtEntryIter` misbehave: a zero length loops
/// forever, a length past the end underflows its remaining-length counter (a panic in
/// debug builds), a short entry is read past its end. All must be clean errors.
#[test]
fn malformed_madt_entries_are_errors() {
    let cases: [(&[u8], u8, u8, MadtEntryProblem); 8] = [
        // Processor Local APIC with length 0.
        (
            &[0, 0, 0, 0, 1, 0, 0, 0],
            0,
            0,
            MadtEntryProblem::TooShort { min: 8 },
        ),
        // A reserved type with length 0 (the crate skips reserved types by their length).
        (
            &[0x7f, 0, 0, 0],
            0x7f,
            0,
            MadtEntryProblem::TooShort { min: 2 },
        ),
        // An OEM type with length 1.
        (
            &[0x80, 1, 0, 0],
            0x80,
            1,
            MadtEntryProblem::TooShort { min: 2 },
        ),
        // Processor Local APIC with length 6 (too small for its 8-byte structure).
        (
            &[0, 6, 0, 1, 1, 0, 0, 0],
            0,
            6,
            MadtEntryProblem::TooShort { min: 8 },
        ),
        // Local x2APIC with length 12 of 16.
        (
            &[9, 12, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0],
            9,
            12,
            MadtEntryProblem::TooShort { min: 16 },
        ),
        // Processor Local APIC claiming 200 bytes.
        (
            &[0, 200, 0, 1, 1, 0, 0, 0],
            0,
            200,
            MadtEntryProblem::PastEndOfTable,
        ),
        // I/O APIC claiming 255 bytes.
        (
            &[1, 255, 0, 0, 0, 0, 0xc0, 0xfe, 0, 0, 0, 0],
            1,
            255,
            MadtEntryProblem::PastEndOfTable,
        ),
        // A lone trailing byte: not even a header.
        (&[0], 0, 0, MadtEntryProblem::TruncatedHeader),
    ];
    for (bytes, entry_type, length, problem) in cases {
        let madt = MadtBuilder::new().local_apic(0, 0, 1).raw(bytes);
        assert_eq!(
            discover_madt(&madt),
            Err(AcpiError::MalformedMadtEntry {
                offset: 44 + 8,
                entry_type,
                length,
                problem
            }),
            "{bytes:?}"
        );
    }
    // The error message names the entry.
    let madt = MadtBuilder::new().raw(&[9, 16, 0, 0]);
    let error = discover_madt(&madt).unwrap_err();
    assert_eq!(
        error.to_string(),
        "ACPI MADT entry at offset 44 (type 0x9, length 16) is malformed: it runs past the end \
         of the table"
    );
}

#[test]
fn madt_with_impossible_length_is_an_error() {
    for length in [0u32, 20, 43, 0x10_0001, 0xffff_ffff] {
        let (mut image, layout) = standard_image(Some(qemu_madt().build()), None, None);
        image.patch(layout.madt + 4, &length.to_le_bytes());
        image.fix_checksum(layout.madt);
        let error = run(&image.handler(), Some(layout.rsdp)).unwrap_err();
        assert_eq!(
            error,
            AcpiError::InvalidTable {
                signature: Signature::MADT,
                address: layout.madt,
                problem: TableProblem::BadLength(length)
            }
        );
    }
    // A length that cuts an entry in half is an entry error.
    let (mut image, layout) = standard_image(Some(qemu_madt().build()), None, None);
    image.patch(layout.madt + 4, &(44u32 + 8 + 4).to_le_bytes());
    image.fix_checksum(layout.madt);
    assert!(matches!(
        run(&image.handler(), Some(layout.rsdp)),
        Err(AcpiError::MalformedMadtEntry {
            offset: 52,
            problem: MadtEntryProblem::PastEndOfTable,
            ..
        })
    ));
}

#[test]
fn root_table_shorter_than_its_header_is_an_error() {
    // `acpi::AcpiTables` would compute `length - 36` and underflow.
    let (mut image, layout) = standard_image(Some(qemu_madt().build()), None, None);
    image.patch(layout.xsdt + 4, &20u32.to_le_bytes());
    image.fix_checksum(layout.xsdt);
    // No RSDT fallback: make the RSDT bad too.
    image.patch(layout.rsdt + 9, &[0x42]);
    assert_eq!(
        run(&image.handler(), Some(layout.rsdp)),
        Err(AcpiError::InvalidTable {
            signature: Signature::XSDT,
            address: layout.xsdt,
            problem: TableProblem::BadLength(20)
        })
    );
}

#[test]
fn root_table_oddities_are_warnings() {
    let mut image = Image::new();
    let madt = image.add(&qemu_madt().build());
    // A null entry, an entry beyond 2^52, a partial trailing entry.
    let mut table = xsdt(&[0, 1 << 60, madt]);
    table.extend_from_slice(&[1, 2, 3]);
    let length = table.len() as u32;
    table[4..8].copy_from_slice(&length.to_le_bytes());
    table[9] = 0;
    table[9] = checksum_byte(&table);
    let root = image.add(&table);
    let rsdp = image.add(&rsdp_v2(0, root));
    let p = run(&image.handler(), Some(rsdp)).unwrap();
    assert_eq!(p.cpus.len(), 4);
    assert_eq!(
        p.warnings,
        [
            Warning::NullTableEntry { index: 0 },
            Warning::BadTableAddress {
                index: 1,
                address: 1 << 60
            },
        ]
    );
}

#[test]
fn no_madt_is_an_error() {
    let error = discover_standard(None, Some(qemu_fadt().build()), Some(qemu_hpet())).unwrap_err();
    assert_eq!(error, AcpiError::NoMadt);
    assert!(error.to_string().contains("no MADT"));
}

#[test]
fn rsdp_absent() {
    // Tables exist but nothing points at them, and low memory is empty.
    let mut image = Image::new();
    let madt = image.add(&qemu_madt().build());
    image.add(&xsdt(&[madt]));
    // A stray signature with a bad checksum in the BIOS area is not an RSDP.
    image.patch(0xe_1230, b"RSD PTR \0\0\0\0\0\0\0\0\0\0\0\0");
    let error = run(&image.handler(), None).unwrap_err();
    assert_eq!(error, AcpiError::NoRsdp);
    assert!(error.to_string().starts_with("no ACPI RSDP found"));
}

#[test]
fn rsdp_search_skips_bogus_candidates_and_checks_the_ebda() {
    let mut image = Image::new();
    let madt = image.add(&qemu_madt().build());
    let root = image.add(&xsdt(&[madt]));
    // A candidate with a valid first checksum but an absurd ACPI 2.0 length (the
    // `acpi` crate would checksum 4 GiB from it), then the real RSDP.
    let mut bogus = rsdp_v2(0, root);
    bogus[20..24].copy_from_slice(&u32::MAX.to_le_bytes());
    image.patch(0xe_0000, &bogus);
    image.patch(0xf_0000, &rsdp_v2(0, root));
    let p = run(&image.handler(), None).unwrap();
    assert!(matches!(
        p.source,
        Source::Acpi {
            rsdp_address: 0xf_0000,
            ..
        }
    ));

    // The EBDA is searched first: segment 0x9FC0 at 40:0Eh puts it at 0x9FC00.
    let mut image = Image::new();
    let madt = image.add(&qemu_madt().build());
    let root = image.add(&xsdt(&[madt]));
    image.patch(0x40e, &0x9fc0u16.to_le_bytes());
    image.patch(0x9_fc10, &rsdp_v2(0, root));
    image.patch(0xf_0000, &rsdp_v2(0, root));
    let p = run(&image.handler(), None).unwrap();
    assert!(matches!(
        p.source,
        Source::Acpi {
            rsdp_address: 0x9_fc10,
            ..
        }
    ));
}

#[test]
fn explicit_rsdp_address_problems() {
    let (mut image, layout) = standard_image(Some(qemu_madt().build()), None, None);
    let mut bad_length = rsdp_v2(layout.rsdt, layout.xsdt);
    bad_length[20..24].copy_from_slice(&0xffff_0000u32.to_le_bytes());
    image.patch(0xe_0000, &bad_length);
    let handler = image.handler();
    // Nothing there.
    assert_eq!(
        run(&handler, Some(0x1000)),
        Err(AcpiError::InvalidRsdp {
            address: 0x1000,
            problem: RsdpProblem::BadSignature
        })
    );
    // Not a physical address.
    for address in [1 << 52, u64::MAX - 4] {
        assert_eq!(
            run(&handler, Some(address)),
            Err(AcpiError::InvalidRsdp {
                address,
                problem: RsdpProblem::AddressOutOfRange
            })
        );
    }
    // An absurd ACPI 2.0 length is rejected before anything that long is read.
    assert_eq!(
        run(&handler, Some(0xe_0000)),
        Err(AcpiError::InvalidRsdp {
            address: 0xe_0000,
            problem: RsdpProblem::BadLength(0xffff_0000)
        })
    );
}

#[test]
fn fadt_pm_timer_variants() {
    let pm = |fadt: FadtBuilder| {
        let p = discover_standard(Some(qemu_madt().build()), Some(fadt.build()), None).unwrap();
        (p.pm_timer, p.warnings)
    };
    let io = |port, bits| {
        Some(PmTimer {
            location: RegisterLocation::Io(port),
            bits,
        })
    };

    // 24-bit at the PM_TMR_BLK port.
    assert_eq!(pm(FadtBuilder::new()), (io(0x608, 24), vec![]));
    // 32-bit (TMR_VAL_EXT).
    let fadt = FadtBuilder {
        flags: TMR_VAL_EXT,
        ..FadtBuilder::new()
    };
    assert_eq!(pm(fadt), (io(0x608, 32), vec![]));
    // Only in X_PM_TMR_BLK.
    let fadt = FadtBuilder {
        pm_tmr_blk: 0,
        x_pm_tmr_blk: Gas::io(0xb008, 32),
        ..FadtBuilder::new()
    };
    assert_eq!(pm(fadt), (io(0xb008, 24), vec![]));
    // X_PM_TMR_BLK wins over PM_TMR_BLK, and may be memory mapped.
    let fadt = FadtBuilder {
        flags: TMR_VAL_EXT,
        x_pm_tmr_blk: Gas::memory(0xfed8_0008, 32),
        ..FadtBuilder::new()
    };
    assert_eq!(
        pm(fadt),
        (
            Some(PmTimer {
                location: RegisterLocation::Memory(0xfed8_0008),
                bits: 32
            }),
            vec![]
        )
    );
    // PM_TMR_LEN 0: no PM timer.
    let fadt = FadtBuilder {
        pm_tmr_len: 0,
        ..FadtBuilder::new()
    };
    assert_eq!(pm(fadt), (None, vec![]));
    // Hardware-reduced ACPI: the fields are to be ignored.
    let fadt = FadtBuilder {
        flags: HW_REDUCED_ACPI,
        ..FadtBuilder::new()
    };
    assert_eq!(pm(fadt), (None, vec![]));
    // An I/O "port" beyond 0xFFFF.
    let fadt = FadtBuilder {
        x_pm_tmr_blk: Gas::io(0x1_0000, 32),
        ..FadtBuilder::new()
    };
    let (timer, warnings) = pm(fadt);
    assert_eq!(timer, None);
    assert!(matches!(warnings[..], [Warning::PmTimerUnusable(_)]));
    // A reserved address space ID in X_PM_TMR_BLK.
    let fadt = FadtBuilder {
        x_pm_tmr_blk: Gas {
            space: 0x20,
            ..Gas::io(0x608, 32)
        },
        ..FadtBuilder::new()
    };
    let (timer, warnings) = pm(fadt);
    assert_eq!(timer, None);
    assert!(matches!(warnings[..], [Warning::PmTimerUnusable(_)]));
}

#[test]
fn short_fadt_is_not_read_past_its_end() {
    // An ACPI 1.0-sized FADT (116 bytes) claiming a recent revision, followed in memory by
    // bytes that would be a valid X_PM_TMR_BLK and RESET_REG if the table were longer.
    let fadt = FadtBuilder {
        revision: 6,
        length: 116,
        flags: RESET_REG_SUP,
        ..FadtBuilder::new()
    };
    let mut image = Image::new();
    let fadt_address = image.add(&fadt.build());
    let mut after = vec![0u8; 128];
    // FADT offset 116 (RESET_REG) and 208 (X_PM_TMR_BLK), relative to the next 16-byte
    // boundary at FADT + 128.
    let reset = [1, 8, 0, 1, 0xf9, 0x0c, 0, 0, 0, 0, 0, 0];
    let timer = [1, 32, 0, 3, 0x34, 0x12, 0, 0, 0, 0, 0, 0];
    after[0..12].copy_from_slice(&reset); // would be offset 128: harmless
    after[80..92].copy_from_slice(&timer);
    let after_address = image.add(&after);
    assert_eq!(after_address, fadt_address + 128);
    let madt = image.add(&qemu_madt().build());
    let root = image.add(&xsdt(&[fadt_address, madt]));
    let rsdp = image.add(&rsdp_v2(0, root));
    let p = run(&image.handler(), Some(rsdp)).unwrap();
    assert_eq!(
        p.pm_timer,
        Some(PmTimer {
            location: RegisterLocation::Io(0x608),
            bits: 24
        })
    );
    // RESET_REG_SUP is set but RESET_REG lies beyond the table: unusable, not garbage.
    assert_eq!(p.reset_register, None);
    assert!(matches!(
        p.warnings[..],
        [Warning::ResetRegisterUnusable(_)]
    ));

    // Shorter than ACPI 1.0's FADT: ignored with a warning.
    let fadt = FadtBuilder {
        length: 100,
        ..FadtBuilder::new()
    };
    let (image, layout) = standard_image(Some(qemu_madt().build()), Some(fadt.build()), None);
    let p = run(&image.handler(), Some(layout.rsdp)).unwrap();
    assert_eq!(p.pm_timer, None);
    assert_eq!(
        p.warnings,
        [Warning::TableSkipped(AcpiError::InvalidTable {
            signature: Signature::FADT,
            address: layout.fadt,
            problem: TableProblem::BadLength(100)
        })]
    );
}

#[test]
fn fadt_reset_register_variants() {
    let reset = |fadt: FadtBuilder| {
        let p = discover_standard(Some(qemu_madt().build()), Some(fadt.build()), None).unwrap();
        (p.reset_register, p.warnings)
    };
    // PCI configuration space: device 31, function 0, offset 0x44.
    let fadt = FadtBuilder {
        flags: RESET_REG_SUP,
        reset_reg: Gas {
            space: 2,
            width: 8,
            offset: 0,
            access: 1,
            address: (31 << 32) | 0x44,
        },
        reset_value: 6,
        ..FadtBuilder::new()
    };
    assert_eq!(
        reset(fadt),
        (
            Some(ResetRegister {
                location: RegisterLocation::Pci {
                    device: 31,
                    function: 0,
                    offset: 0x44
                },
                value: 6
            }),
            vec![]
        )
    );
    // Not supported: ignored silently, even if filled in.
    let fadt = FadtBuilder {
        flags: 0,
        ..qemu_fadt()
    };
    assert_eq!(reset(fadt), (None, vec![]));
    // Wrong width.
    let fadt = FadtBuilder {
        reset_reg: Gas::io(0xcf9, 16),
        ..qemu_fadt()
    };
    let (register, warnings) = reset(fadt);
    assert_eq!(register, None);
    assert!(matches!(warnings[..], [Warning::ResetRegisterUnusable(_)]));
    // Invalid access size (5).
    let fadt = FadtBuilder {
        reset_reg: Gas {
            access: 5,
            ..Gas::io(0xcf9, 8)
        },
        ..qemu_fadt()
    };
    let (register, warnings) = reset(fadt);
    assert_eq!(register, None);
    assert!(matches!(warnings[..], [Warning::ResetRegisterUnusable(_)]));
    // A PCI device number beyond 31.
    let fadt = FadtBuilder {
        reset_reg: Gas {
            space: 2,
            width: 8,
            offset: 0,
            access: 1,
            address: (40 << 32) | 0x44,
        },
        ..qemu_fadt()
    };
    assert_eq!(reset(fadt).0, None);
}

#[test]
fn hpet_variants() {
    let run_hpet = |table: Vec<u8>| {
        let (image, layout) = standard_image(Some(qemu_madt().build()), None, Some(table));
        let p = run(&image.handler(), Some(layout.rsdp)).unwrap();
        (p.hpet, p.warnings, layout.hpet)
    };
    // In I/O space, which the HPET never is (`acpi::HpetInfo::new` would assert).
    let (hpet_info, warnings, _) = run_hpet(hpet(0x8086_a201, Gas::io(0x1000, 64), 0, 0, 0));
    assert_eq!(hpet_info, None);
    assert!(matches!(warnings[..], [Warning::HpetUnusable(_)]));
    // Base address 0.
    let (hpet_info, warnings, _) = run_hpet(hpet(0x8086_a201, Gas::memory(0, 64), 0, 0, 0));
    assert_eq!(hpet_info, None);
    assert_eq!(warnings.len(), 1);
    // Truncated table.
    let mut short = qemu_hpet();
    short.truncate(50);
    short[4..8].copy_from_slice(&50u32.to_le_bytes());
    short[9] = 0;
    short[9] = checksum_byte(&short);
    let (hpet_info, warnings, address) = run_hpet(short);
    assert_eq!(hpet_info, None);
    assert_eq!(
        warnings,
        [Warning::TableSkipped(AcpiError::InvalidTable {
            signature: Signature::HPET,
            address,
            problem: TableProblem::BadLength(50)
        })]
    );
    // 32-bit counter, one comparator, 4 KiB page protection.
    let (hpet_info, warnings, _) =
        run_hpet(hpet(0x1234_0001, Gas::memory(0xfed0_0000, 64), 1, 0, 0x21));
    let hpet_info = hpet_info.unwrap();
    assert_eq!(warnings, []);
    assert_eq!(
        (
            hpet_info.comparators,
            hpet_info.counter_64bit,
            hpet_info.legacy_replacement,
            hpet_info.pci_vendor_id,
            hpet_info.page_protection,
            hpet_info.hpet_number
        ),
        (1, false, false, 0x1234, 1, 1)
    );
}

#[test]
fn local_apic_address_override() {
    let madt = qemu_madt()
        .local_apic_override(0x1_fee0_0000)
        .local_apic_override(0x2_fee0_0000);
    let p = discover_madt(&madt).unwrap();
    assert_eq!(p.local_apic_address, 0x1_fee0_0000);
    assert_eq!(
        p.warnings,
        [Warning::ExtraLocalApicAddressOverride {
            address: 0x2_fee0_0000
        }]
    );
    // No PCAT_COMPAT flag: no legacy PICs.
    let madt = MadtBuilder {
        flags: 0,
        local_apic_address: 0xfee1_0000,
        ..MadtBuilder::new()
    }
    .local_apic(0, 0, 1);
    let p = discover_madt(&madt).unwrap();
    assert!(!p.legacy_pics);
    assert_eq!(p.local_apic_address, 0xfee1_0000);
}

#[test]
fn bad_interrupt_controller_entries_are_warnings() {
    let madt = MadtBuilder::new()
        .local_apic(0, 0, 1)
        .io_apic(0, 0xfec0_0000, 0)
        .io_apic(0, 0xfec1_0000, 24) // duplicate ID
        .io_apic(1, 0, 24) // address 0
        .interrupt_override(1, 4, 4, 0) // bus 1
        .interrupt_override(0, 3, 3, 0b10) // reserved polarity
        .interrupt_override(0, 7, 7, 0b1000) // reserved trigger mode
        .interrupt_override(0, 0, 2, 0)
        .interrupt_override(0, 0, 5, 0) // second override for IRQ 0
        .local_apic_nmi(0, 0, 2) // LINT2 does not exist
        .local_apic_nmi(0, 0b10, 1); // reserved polarity
    let p = discover_madt(&madt).unwrap();
    assert_eq!(p.io_apics.len(), 1);
    assert_eq!(p.interrupt_overrides.len(), 1);
    assert_eq!(p.isa_irq(0).gsi, 2);
    assert_eq!(p.local_apic_nmis, []);
    assert_eq!(
        p.warnings,
        [
            Warning::DuplicateIoApicId { id: 0 },
            Warning::InvalidIoApic { id: 1, address: 0 },
            Warning::InvalidInterruptOverride {
                bus: 1,
                irq: 4,
                flags: 0
            },
            Warning::InvalidInterruptOverride {
                bus: 0,
                irq: 3,
                flags: 0b10
            },
            Warning::InvalidInterruptOverride {
                bus: 0,
                irq: 7,
                flags: 0b1000
            },
            Warning::DuplicateInterruptOverride { irq: 0 },
            Warning::InvalidLocalApicNmi {
                processor_uid: Some(0),
                lint: 2,
                flags: 0
            },
            Warning::InvalidLocalApicNmi {
                processor_uid: Some(0),
                lint: 1,
                flags: 0b10
            },
        ]
    );
    // Every warning has a message.
    for warning in &p.warnings {
        assert!(!warning.to_string().is_empty());
    }
}

#[test]
fn unknown_and_longer_entries_are_skipped() {
    // A longer-than-defined Local APIC entry (later revisions may extend structures), a
    // reserved type and an OEM type are all fine.
    let madt = MadtBuilder::new()
        .raw(&[0, 10, 0, 0, 1, 0, 0, 0, 0xaa, 0xbb])
        .raw(&[0x42, 5, 1, 2, 3])
        .raw(&[0x90, 2])
        .local_apic(1, 1, 1);
    let p = discover_madt(&madt).unwrap();
    assert_eq!(apic_ids(&p), [0, 1]);
    assert_eq!(p.warnings, []);
}

#[test]
fn huge_tables_are_capped() {
    // A checksummed MADT with more processors than MAX_CPUS and a flood of bad entries:
    // memory use and the warning list stay bounded.
    let mut madt = MadtBuilder::new();
    for id in 0..MAX_CPUS as u32 + 10 {
        madt = madt.x2apic(id, 1, id);
    }
    for uid in 0..100 {
        madt = madt.local_apic(uid, 0xff, 1);
    }
    for _ in 0..1000 {
        madt = madt.local_apic_nmi(0xff, 0, 1);
    }
    let p = discover_madt(&madt).unwrap();
    assert_eq!(p.cpus.len(), MAX_CPUS);
    assert_eq!(p.local_apic_nmis.len(), 256);
    assert_eq!(p.warnings.len(), MAX_WARNINGS + 1);
    assert_eq!(
        p.warnings[0],
        Warning::InvalidApicId {
            processor_uid: 0,
            apic_id: 0xff
        }
    );
    // 100 invalid IDs + 1 TooManyCpus = 101 warnings, 64 kept.
    assert_eq!(
        p.warnings.last(),
        Some(&Warning::Suppressed {
            count: 101 - MAX_WARNINGS
        })
    );
}

#[test]
fn fallback_platform() {
    let p = Platform::single_cpu_fallback(3);
    assert_eq!(p.cpus, [cpu(3, 0, true, false, false)]);
    assert_eq!(apic_ids(&p), [3]);
    assert_eq!(p.local_apic_address, DEFAULT_LOCAL_APIC_ADDRESS);
    assert_eq!(p.io_apics, []);
    assert!(p.legacy_pics);
    assert_eq!(p.source, Source::Fallback);
    assert_eq!((p.pm_timer, p.reset_register, p.hpet), (None, None, None));
    assert!(Platform::single_cpu_fallback(0x1_0000).cpus[0].x2apic_entry);
    // Without overrides, ISA IRQs map to the same GSI, edge/active high.
    let r = p.isa_irq(1);
    assert_eq!(
        (r.gsi, r.polarity, r.trigger),
        (1, Polarity::ActiveHigh, TriggerMode::Edge)
    );
}

#[test]
fn ensure_boot_cpu_corrects_the_madt() {
    let madt = MadtBuilder::new().local_apic(0, 0, 0).local_apic(1, 1, 1);
    let mut p = discover_madt(&madt).unwrap();
    assert_eq!(apic_ids(&p), [1]);
    p.ensure_boot_cpu(0);
    assert_eq!(apic_ids(&p), [0, 1]);
    assert_eq!(p.warnings, [Warning::BootCpuNotListed { apic_id: 0 }]);
    // Already fine: no change.
    p.ensure_boot_cpu(1);
    assert_eq!(p.warnings.len(), 1);
    // Missing altogether: added first.
    p.ensure_boot_cpu(7);
    assert_eq!(p.cpus[0], cpu(7, 0, true, false, false));
    assert_eq!(p.warnings.len(), 2);
}

#[test]
fn signatures_display_safely() {
    assert_eq!(Signature::MADT.to_string(), "APIC");
    assert_eq!(Signature([b'A', 0, 0xff, b' ']).to_string(), "A?? ");
    assert_eq!(format!("{:?}", Signature::FADT), "\"FACP\"");
    let error = AcpiError::InvalidTable {
        signature: Signature::MADT,
        address: 0x1000,
        problem: TableProblem::WrongSignature(Signature([0, 1, 2, 3])),
    };
    assert_eq!(
        error.to_string(),
        "ACPI APIC table at 0x1000 is invalid: signature is \"????\""
    );
}

/// xorshift64*, for the corruption test.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Random corruption of the MADT, FADT, HPET and RSDP (checksums repaired so that parsing
/// goes past the checksum check) must never panic, hang or read outside the tables'
/// validated bounds, and a successful result must be self-consistent.
#[test]
fn corrupted_tables_never_panic() {
    let madt = qemu_madt()
        .x2apic(0x200, 0b10, 9)
        .local_apic_override(0xfee0_0000)
        .x2apic_nmi(9, 0, 1)
        .build();
    let mut outcomes = [0usize; 2];
    for seed in 1..=400u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let (mut image, layout) = standard_image(
            Some(madt.clone()),
            Some(qemu_fadt().build()),
            Some(qemu_hpet()),
        );
        let targets = [
            (layout.madt, madt.len()),
            (layout.fadt, 276),
            (layout.hpet, 56),
        ];
        for _ in 0..1 + rng.below(6) {
            let (address, len) = targets[rng.below(3) as usize];
            let offset = rng.below(len as u64);
            let value = match rng.below(4) {
                0 => 0,
                1 => 0xff,
                _ => rng.next() as u8,
            };
            image.patch(address + offset, &[value]);
        }
        for (address, _) in targets {
            if rng.below(8) != 0 {
                image.fix_checksum(address);
            }
        }
        if rng.below(10) == 0 {
            // The RSDP's length field.
            let length = rng.below(80) as u32;
            image.patch(layout.rsdp + 20, &length.to_le_bytes());
        }
        let handler = image.handler();
        match run(&handler, Some(layout.rsdp)) {
            Ok(p) => {
                outcomes[0] += 1;
                let mut ids: Vec<u32> = p.cpus.iter().map(|c| c.apic_id).collect();
                ids.sort_unstable();
                ids.dedup();
                assert_eq!(ids.len(), p.cpus.len(), "duplicate APIC IDs survived");
                assert!(p.usable_cpus().count() > 0);
                for w in &p.warnings {
                    let _ = w.to_string();
                }
            }
            Err(e) => {
                outcomes[1] += 1;
                assert!(!e.to_string().is_empty());
            }
        }
        // Discovery maps a bounded number of regions (no runaway loops).
        assert!(
            handler.total_mappings() < 64,
            "{}",
            handler.total_mappings()
        );
    }
    // The corruption exercised both outcomes.
    assert!(outcomes[0] > 20 && outcomes[1] > 20, "{outcomes:?}");
}
