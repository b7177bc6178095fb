//! VMCS field encodings (SDM Vol. 3D Appendix B), one enum per width and type.
//!
//! VMREAD/VMWRITE name a field by a 32-bit encoding whose bits say what the field is
//! (SDM Vol. 3C §25.11.2, "VMREAD, VMWRITE, and Encodings of VMCS Fields"):
//!
//! | bits  | meaning                                                            |
//! |-------|--------------------------------------------------------------------|
//! | 0     | access type: 0 = full, 1 = high 32 bits of a 64-bit field           |
//! | 9:1   | index                                                              |
//! | 11:10 | type: 0 = control, 1 = VM-exit information (read-only), 2 = guest-state, 3 = host-state |
//! | 12    | reserved (0)                                                       |
//! | 14:13 | width: 0 = 16-bit, 1 = 64-bit, 2 = 32-bit, 3 = natural-width        |
//! | 31:15 | reserved (0)                                                       |
//!
//! Splitting the fields by width and type means a future `vmwrite` can take a `u16` for a
//! [`Guest16`] field and a `u64` for a [`Guest64`] field, so a value of the wrong size does
//! not compile. Each enum's discriminants are checked against its width and type bits at
//! compile time; since the compiler already rejects duplicate discriminants within an enum
//! and the width/type bits partition the encoding space, no encoding can appear twice
//! across enums either.
//!
//! Only the full (bit 0 = 0) encoding of 64-bit fields is listed: Ferrovisor runs in 64-bit
//! mode, where VMREAD/VMWRITE of the full encoding moves all 64 bits.

/// Width of a VMCS field, encoding bits 14:13.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Width {
    /// 16-bit field.
    Bits16 = 0,
    /// 64-bit field (accessible as full or high half).
    Bits64 = 1,
    /// 32-bit field.
    Bits32 = 2,
    /// Natural width: 64 bits on processors that support Intel 64.
    Natural = 3,
}

/// Type of a VMCS field, encoding bits 11:10.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum FieldKind {
    /// VM-execution, VM-exit and VM-entry control fields.
    Control = 0,
    /// VM-exit information fields; VMWRITE to them fails unless IA32_VMX_MISC\[29\] is set.
    ReadOnly = 1,
    /// Guest-state area.
    Guest = 2,
    /// Host-state area.
    Host = 3,
}

/// The width an encoding declares (bits 14:13).
pub const fn width(encoding: u32) -> Width {
    match (encoding >> 13) & 0b11 {
        0 => Width::Bits16,
        1 => Width::Bits64,
        2 => Width::Bits32,
        _ => Width::Natural,
    }
}

/// The type an encoding declares (bits 11:10).
pub const fn kind(encoding: u32) -> FieldKind {
    match (encoding >> 10) & 0b11 {
        0 => FieldKind::Control,
        1 => FieldKind::ReadOnly,
        2 => FieldKind::Guest,
        _ => FieldKind::Host,
    }
}

/// The index an encoding declares (bits 9:1).
pub const fn index(encoding: u32) -> u32 {
    (encoding >> 1) & 0x1FF
}

/// Whether an encoding selects the high 32 bits of a 64-bit field (bit 0).
pub const fn is_high_access(encoding: u32) -> bool {
    encoding & 1 != 0
}

/// Bits that must be zero in every encoding: 31:15 and 12.
const RESERVED_BITS: u32 = 0xFFFF_8000 | (1 << 12);

/// Whether `encoding` is a well-formed full-access encoding of the given width and type.
pub const fn is_valid_full_encoding(encoding: u32, w: Width, k: FieldKind) -> bool {
    encoding & RESERVED_BITS == 0
        && !is_high_access(encoding)
        && width(encoding) as u8 == w as u8
        && kind(encoding) as u8 == k as u8
}

/// Common shape of the field enums, so VMCS accessors can be generic over them.
pub trait VmcsField: Copy {
    /// Width shared by every field of the enum.
    const WIDTH: Width;
    /// Type shared by every field of the enum.
    const KIND: FieldKind;
    /// The SDM encoding passed to VMREAD/VMWRITE.
    fn encoding(self) -> u32;
}

macro_rules! vmcs_fields {
    (
        $(#[$meta:meta])*
        $name:ident: $width:ident, $kind:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $enc:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr(u32)]
        pub enum $name {
            $( $(#[$vmeta])* $variant = $enc, )+
        }

        impl $name {
            /// Width of every field in this enum.
            pub const WIDTH: Width = Width::$width;
            /// Type of every field in this enum.
            pub const KIND: FieldKind = FieldKind::$kind;
            /// Every field, in encoding order.
            pub const ALL: &'static [Self] = &[ $( Self::$variant, )+ ];

            /// The SDM encoding passed to VMREAD/VMWRITE.
            pub const fn encoding(self) -> u32 {
                self as u32
            }
        }

        impl VmcsField for $name {
            const WIDTH: Width = Width::$width;
            const KIND: FieldKind = FieldKind::$kind;
            fn encoding(self) -> u32 {
                self as u32
            }
        }

        // A typo in an encoding (wrong width or type bits, or a high-half encoding) fails
        // the build here rather than as VM-instruction error 12 on hardware.
        const _: () = {
            let all = $name::ALL;
            let mut i = 0;
            while i < all.len() {
                assert!(is_valid_full_encoding(
                    all[i].encoding(),
                    Width::$width,
                    FieldKind::$kind
                ));
                i += 1;
            }
        };
    };
}

vmcs_fields! {
    /// 16-bit control fields (SDM Vol. 3D §B.1.1).
    Control16: Bits16, Control {
        /// Virtual-processor identifier (SDM Vol. 3C §25.6.12).
        Vpid = 0x0000,
        /// Posted-interrupt notification vector.
        PostedInterruptNotificationVector = 0x0002,
        /// EPTP index (EPT-violation #VE).
        EptpIndex = 0x0004,
    }
}

vmcs_fields! {
    /// 16-bit guest-state fields (SDM Vol. 3D §B.1.2).
    Guest16: Bits16, Guest {
        /// Guest ES selector.
        EsSelector = 0x0800,
        /// Guest CS selector.
        CsSelector = 0x0802,
        /// Guest SS selector.
        SsSelector = 0x0804,
        /// Guest DS selector.
        DsSelector = 0x0806,
        /// Guest FS selector.
        FsSelector = 0x0808,
        /// Guest GS selector.
        GsSelector = 0x080A,
        /// Guest LDTR selector.
        LdtrSelector = 0x080C,
        /// Guest TR selector.
        TrSelector = 0x080E,
        /// Guest interrupt status (virtual-interrupt delivery).
        InterruptStatus = 0x0810,
        /// PML index.
        PmlIndex = 0x0812,
    }
}

vmcs_fields! {
    /// 16-bit host-state fields (SDM Vol. 3D §B.1.3). There is no host LDTR: VM exit
    /// loads a null LDTR (SDM Vol. 3C §28.5.2).
    Host16: Bits16, Host {
        /// Host ES selector.
        EsSelector = 0x0C00,
        /// Host CS selector.
        CsSelector = 0x0C02,
        /// Host SS selector.
        SsSelector = 0x0C04,
        /// Host DS selector.
        DsSelector = 0x0C06,
        /// Host FS selector.
        FsSelector = 0x0C08,
        /// Host GS selector.
        GsSelector = 0x0C0A,
        /// Host TR selector.
        TrSelector = 0x0C0C,
    }
}

vmcs_fields! {
    /// 64-bit control fields (SDM Vol. 3D §B.2.1).
    Control64: Bits64, Control {
        /// Address of I/O bitmap A, ports 0000h-7FFFh (SDM Vol. 3C §25.6.4).
        IoBitmapA = 0x2000,
        /// Address of I/O bitmap B, ports 8000h-FFFFh.
        IoBitmapB = 0x2002,
        /// Address of the MSR bitmaps (SDM Vol. 3C §25.6.9).
        MsrBitmap = 0x2004,
        /// VM-exit MSR-store address (SDM Vol. 3C §25.7.2).
        ExitMsrStoreAddress = 0x2006,
        /// VM-exit MSR-load address.
        ExitMsrLoadAddress = 0x2008,
        /// VM-entry MSR-load address (SDM Vol. 3C §25.8.2).
        EntryMsrLoadAddress = 0x200A,
        /// Executive-VMCS pointer (dual-monitor SMM treatment).
        ExecutiveVmcsPointer = 0x200C,
        /// PML address.
        PmlAddress = 0x200E,
        /// TSC offset (SDM Vol. 3C §25.6.5).
        TscOffset = 0x2010,
        /// Virtual-APIC address (SDM Vol. 3C §25.6.8).
        VirtualApicAddress = 0x2012,
        /// APIC-access address.
        ApicAccessAddress = 0x2014,
        /// Posted-interrupt descriptor address.
        PostedInterruptDescriptorAddress = 0x2016,
        /// VM-function controls.
        VmFunctionControls = 0x2018,
        /// EPT pointer (SDM Vol. 3C §25.6.11).
        Eptp = 0x201A,
        /// EOI-exit bitmap 0 (vectors 0-63).
        EoiExitBitmap0 = 0x201C,
        /// EOI-exit bitmap 1 (vectors 64-127).
        EoiExitBitmap1 = 0x201E,
        /// EOI-exit bitmap 2 (vectors 128-191).
        EoiExitBitmap2 = 0x2020,
        /// EOI-exit bitmap 3 (vectors 192-255).
        EoiExitBitmap3 = 0x2022,
        /// EPTP-list address.
        EptpListAddress = 0x2024,
        /// VMREAD-bitmap address.
        VmreadBitmapAddress = 0x2026,
        /// VMWRITE-bitmap address.
        VmwriteBitmapAddress = 0x2028,
        /// Virtualization-exception information address.
        VeInformationAddress = 0x202A,
        /// XSS-exiting bitmap.
        XssExitingBitmap = 0x202C,
        /// ENCLS-exiting bitmap.
        EnclsExitingBitmap = 0x202E,
        /// TSC multiplier.
        TscMultiplier = 0x2032,
        /// Tertiary processor-based VM-execution controls.
        TertiaryProcessorControls = 0x2034,
    }
}

vmcs_fields! {
    /// 64-bit read-only data fields (SDM Vol. 3D §B.2.2).
    ReadOnly64: Bits64, ReadOnly {
        /// Guest-physical address of an EPT violation or misconfiguration.
        GuestPhysicalAddress = 0x2400,
    }
}

vmcs_fields! {
    /// 64-bit guest-state fields (SDM Vol. 3D §B.2.3).
    Guest64: Bits64, Guest {
        /// VMCS link pointer; must be all ones unless VMCS shadowing is used
        /// (SDM Vol. 3C §27.3.1.5).
        VmcsLinkPointer = 0x2800,
        /// Guest IA32_DEBUGCTL.
        Ia32Debugctl = 0x2802,
        /// Guest IA32_PAT.
        Ia32Pat = 0x2804,
        /// Guest IA32_EFER.
        Ia32Efer = 0x2806,
        /// Guest IA32_PERF_GLOBAL_CTRL.
        Ia32PerfGlobalCtrl = 0x2808,
        /// Guest PDPTE0 (PAE paging with EPT).
        Pdpte0 = 0x280A,
        /// Guest PDPTE1.
        Pdpte1 = 0x280C,
        /// Guest PDPTE2.
        Pdpte2 = 0x280E,
        /// Guest PDPTE3.
        Pdpte3 = 0x2810,
        /// Guest IA32_BNDCFGS.
        Ia32Bndcfgs = 0x2812,
        /// Guest IA32_RTIT_CTL.
        Ia32RtitCtl = 0x2814,
    }
}

vmcs_fields! {
    /// 64-bit host-state fields (SDM Vol. 3D §B.2.4).
    Host64: Bits64, Host {
        /// Host IA32_PAT.
        Ia32Pat = 0x2C00,
        /// Host IA32_EFER.
        Ia32Efer = 0x2C02,
        /// Host IA32_PERF_GLOBAL_CTRL.
        Ia32PerfGlobalCtrl = 0x2C04,
    }
}

vmcs_fields! {
    /// 32-bit control fields (SDM Vol. 3D §B.3.1).
    Control32: Bits32, Control {
        /// Pin-based VM-execution controls (SDM Vol. 3C §25.6.1).
        PinBasedControls = 0x4000,
        /// Primary processor-based VM-execution controls (SDM Vol. 3C §25.6.2).
        PrimaryProcessorControls = 0x4002,
        /// Exception bitmap (SDM Vol. 3C §25.6.3).
        ExceptionBitmap = 0x4004,
        /// Page-fault error-code mask.
        PageFaultErrorCodeMask = 0x4006,
        /// Page-fault error-code match.
        PageFaultErrorCodeMatch = 0x4008,
        /// CR3-target count (SDM Vol. 3C §25.6.7).
        Cr3TargetCount = 0x400A,
        /// Primary VM-exit controls (SDM Vol. 3C §25.7.1).
        ExitControls = 0x400C,
        /// VM-exit MSR-store count.
        ExitMsrStoreCount = 0x400E,
        /// VM-exit MSR-load count.
        ExitMsrLoadCount = 0x4010,
        /// VM-entry controls (SDM Vol. 3C §25.8.1).
        EntryControls = 0x4012,
        /// VM-entry MSR-load count.
        EntryMsrLoadCount = 0x4014,
        /// VM-entry interruption-information field (SDM Vol. 3C §25.8.3).
        EntryInterruptionInfo = 0x4016,
        /// VM-entry exception error code.
        EntryExceptionErrorCode = 0x4018,
        /// VM-entry instruction length.
        EntryInstructionLength = 0x401A,
        /// TPR threshold.
        TprThreshold = 0x401C,
        /// Secondary processor-based VM-execution controls.
        SecondaryProcessorControls = 0x401E,
        /// PLE_Gap (PAUSE-loop exiting).
        PleGap = 0x4020,
        /// PLE_Window.
        PleWindow = 0x4022,
    }
}

vmcs_fields! {
    /// 32-bit read-only data fields (SDM Vol. 3D §B.3.2; SDM Vol. 3C §25.9).
    ReadOnly32: Bits32, ReadOnly {
        /// VM-instruction error (SDM Vol. 3C §31.4).
        VmInstructionError = 0x4400,
        /// Exit reason (SDM Vol. 3C §25.9.1).
        ExitReason = 0x4402,
        /// VM-exit interruption information (SDM Vol. 3C §25.9.2).
        ExitInterruptionInfo = 0x4404,
        /// VM-exit interruption error code.
        ExitInterruptionErrorCode = 0x4406,
        /// IDT-vectoring information (SDM Vol. 3C §25.9.3).
        IdtVectoringInfo = 0x4408,
        /// IDT-vectoring error code.
        IdtVectoringErrorCode = 0x440A,
        /// VM-exit instruction length (SDM Vol. 3C §25.9.4).
        ExitInstructionLength = 0x440C,
        /// VM-exit instruction information.
        ExitInstructionInfo = 0x440E,
    }
}

vmcs_fields! {
    /// 32-bit guest-state fields (SDM Vol. 3D §B.3.3; SDM Vol. 3C §25.4).
    Guest32: Bits32, Guest {
        /// Guest ES limit.
        EsLimit = 0x4800,
        /// Guest CS limit.
        CsLimit = 0x4802,
        /// Guest SS limit.
        SsLimit = 0x4804,
        /// Guest DS limit.
        DsLimit = 0x4806,
        /// Guest FS limit.
        FsLimit = 0x4808,
        /// Guest GS limit.
        GsLimit = 0x480A,
        /// Guest LDTR limit.
        LdtrLimit = 0x480C,
        /// Guest TR limit.
        TrLimit = 0x480E,
        /// Guest GDTR limit.
        GdtrLimit = 0x4810,
        /// Guest IDTR limit.
        IdtrLimit = 0x4812,
        /// Guest ES access rights (SDM Vol. 3C §25.4.1 format; bit 16 = unusable).
        EsAccessRights = 0x4814,
        /// Guest CS access rights.
        CsAccessRights = 0x4816,
        /// Guest SS access rights.
        SsAccessRights = 0x4818,
        /// Guest DS access rights.
        DsAccessRights = 0x481A,
        /// Guest FS access rights.
        FsAccessRights = 0x481C,
        /// Guest GS access rights.
        GsAccessRights = 0x481E,
        /// Guest LDTR access rights.
        LdtrAccessRights = 0x4820,
        /// Guest TR access rights.
        TrAccessRights = 0x4822,
        /// Guest interruptibility state (SDM Vol. 3C §25.4.2).
        InterruptibilityState = 0x4824,
        /// Guest activity state.
        ActivityState = 0x4826,
        /// Guest SMBASE.
        Smbase = 0x4828,
        /// Guest IA32_SYSENTER_CS.
        Ia32SysenterCs = 0x482A,
        /// VMX-preemption timer value.
        PreemptionTimerValue = 0x482E,
    }
}

vmcs_fields! {
    /// 32-bit host-state field (SDM Vol. 3D §B.3.4).
    Host32: Bits32, Host {
        /// Host IA32_SYSENTER_CS.
        Ia32SysenterCs = 0x4C00,
    }
}

vmcs_fields! {
    /// Natural-width control fields (SDM Vol. 3D §B.4.1).
    ControlNatural: Natural, Control {
        /// CR0 guest/host mask (SDM Vol. 3C §25.6.6): set bits are owned by the host.
        Cr0GuestHostMask = 0x6000,
        /// CR4 guest/host mask.
        Cr4GuestHostMask = 0x6002,
        /// CR0 read shadow: what the guest reads for host-owned bits.
        Cr0ReadShadow = 0x6004,
        /// CR4 read shadow.
        Cr4ReadShadow = 0x6006,
        /// CR3-target value 0 (SDM Vol. 3C §25.6.7).
        Cr3Target0 = 0x6008,
        /// CR3-target value 1.
        Cr3Target1 = 0x600A,
        /// CR3-target value 2.
        Cr3Target2 = 0x600C,
        /// CR3-target value 3.
        Cr3Target3 = 0x600E,
    }
}

vmcs_fields! {
    /// Natural-width read-only data fields (SDM Vol. 3D §B.4.2).
    ReadOnlyNatural: Natural, ReadOnly {
        /// Exit qualification (SDM Vol. 3C §28.2.1).
        ExitQualification = 0x6400,
        /// I/O RCX (SMM VM exits only).
        IoRcx = 0x6402,
        /// I/O RSI.
        IoRsi = 0x6404,
        /// I/O RDI.
        IoRdi = 0x6406,
        /// I/O RIP.
        IoRip = 0x6408,
        /// Guest-linear address.
        GuestLinearAddress = 0x640A,
    }
}

vmcs_fields! {
    /// Natural-width guest-state fields (SDM Vol. 3D §B.4.3; SDM Vol. 3C §25.4.1).
    GuestNatural: Natural, Guest {
        /// Guest CR0.
        Cr0 = 0x6800,
        /// Guest CR3.
        Cr3 = 0x6802,
        /// Guest CR4.
        Cr4 = 0x6804,
        /// Guest ES base.
        EsBase = 0x6806,
        /// Guest CS base.
        CsBase = 0x6808,
        /// Guest SS base.
        SsBase = 0x680A,
        /// Guest DS base.
        DsBase = 0x680C,
        /// Guest FS base.
        FsBase = 0x680E,
        /// Guest GS base.
        GsBase = 0x6810,
        /// Guest LDTR base.
        LdtrBase = 0x6812,
        /// Guest TR base.
        TrBase = 0x6814,
        /// Guest GDTR base.
        GdtrBase = 0x6816,
        /// Guest IDTR base.
        IdtrBase = 0x6818,
        /// Guest DR7.
        Dr7 = 0x681A,
        /// Guest RSP.
        Rsp = 0x681C,
        /// Guest RIP.
        Rip = 0x681E,
        /// Guest RFLAGS.
        Rflags = 0x6820,
        /// Guest pending debug exceptions.
        PendingDebugExceptions = 0x6822,
        /// Guest IA32_SYSENTER_ESP.
        Ia32SysenterEsp = 0x6824,
        /// Guest IA32_SYSENTER_EIP.
        Ia32SysenterEip = 0x6826,
        /// Guest IA32_S_CET.
        Ia32SCet = 0x6828,
        /// Guest SSP.
        Ssp = 0x682A,
        /// Guest IA32_INTERRUPT_SSP_TABLE_ADDR.
        Ia32InterruptSspTableAddr = 0x682C,
    }
}

vmcs_fields! {
    /// Natural-width host-state fields (SDM Vol. 3D §B.4.4; SDM Vol. 3C §25.5).
    HostNatural: Natural, Host {
        /// Host CR0.
        Cr0 = 0x6C00,
        /// Host CR3.
        Cr3 = 0x6C02,
        /// Host CR4.
        Cr4 = 0x6C04,
        /// Host FS base.
        FsBase = 0x6C06,
        /// Host GS base.
        GsBase = 0x6C08,
        /// Host TR base.
        TrBase = 0x6C0A,
        /// Host GDTR base.
        GdtrBase = 0x6C0C,
        /// Host IDTR base.
        IdtrBase = 0x6C0E,
        /// Host IA32_SYSENTER_ESP.
        Ia32SysenterEsp = 0x6C10,
        /// Host IA32_SYSENTER_EIP.
        Ia32SysenterEip = 0x6C12,
        /// Host RSP: where the VM-exit handler's stack starts.
        Rsp = 0x6C14,
        /// Host RIP: the VM-exit entry point.
        Rip = 0x6C16,
        /// Host IA32_S_CET.
        Ia32SCet = 0x6C18,
        /// Host SSP.
        Ssp = 0x6C1A,
        /// Host IA32_INTERRUPT_SSP_TABLE_ADDR.
        Ia32InterruptSspTableAddr = 0x6C1C,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_width_type_and_index() {
        let enc = GuestNatural::Rip.encoding();
        assert_eq!(enc, 0x681E);
        assert_eq!(width(enc), Width::Natural);
        assert_eq!(kind(enc), FieldKind::Guest);
        assert_eq!(index(enc), 0xF);
        assert!(!is_high_access(enc));
        assert!(is_high_access(Control64::Eptp.encoding() | 1));
    }

    #[test]
    fn spot_check_encodings_against_appendix_b() {
        assert_eq!(Control16::Vpid.encoding(), 0x0000);
        assert_eq!(Control64::MsrBitmap.encoding(), 0x2004);
        assert_eq!(Control64::Eptp.encoding(), 0x201A);
        assert_eq!(ReadOnly64::GuestPhysicalAddress.encoding(), 0x2400);
        assert_eq!(Guest64::VmcsLinkPointer.encoding(), 0x2800);
        assert_eq!(Control32::SecondaryProcessorControls.encoding(), 0x401E);
        assert_eq!(ReadOnly32::ExitReason.encoding(), 0x4402);
        assert_eq!(Guest32::PreemptionTimerValue.encoding(), 0x482E);
        assert_eq!(Host32::Ia32SysenterCs.encoding(), 0x4C00);
        assert_eq!(ReadOnlyNatural::ExitQualification.encoding(), 0x6400);
        assert_eq!(HostNatural::Rip.encoding(), 0x6C16);
    }

    #[test]
    fn trait_matches_inherent() {
        fn via_trait<F: VmcsField>(f: F) -> (u32, Width, FieldKind) {
            (f.encoding(), F::WIDTH, F::KIND)
        }
        assert_eq!(
            via_trait(Host16::TrSelector),
            (0x0C0C, Width::Bits16, FieldKind::Host)
        );
        assert_eq!(
            via_trait(ControlNatural::Cr4ReadShadow),
            (0x6006, Width::Natural, FieldKind::Control)
        );
    }

    #[test]
    fn all_lists_are_sorted_and_unique() {
        fn check(encs: &[u32]) {
            assert!(encs.windows(2).all(|w| w[0] < w[1]), "{encs:x?}");
        }
        check(
            &Control16::ALL
                .iter()
                .map(|f| f.encoding())
                .collect::<Vec<_>>(),
        );
        check(
            &Guest16::ALL
                .iter()
                .map(|f| f.encoding())
                .collect::<Vec<_>>(),
        );
        check(&Host16::ALL.iter().map(|f| f.encoding()).collect::<Vec<_>>());
        check(
            &Control64::ALL
                .iter()
                .map(|f| f.encoding())
                .collect::<Vec<_>>(),
        );
        check(
            &Guest64::ALL
                .iter()
                .map(|f| f.encoding())
                .collect::<Vec<_>>(),
        );
        check(&Host64::ALL.iter().map(|f| f.encoding()).collect::<Vec<_>>());
        check(
            &Control32::ALL
                .iter()
                .map(|f| f.encoding())
                .collect::<Vec<_>>(),
        );
        check(
            &ReadOnly32::ALL
                .iter()
                .map(|f| f.encoding())
                .collect::<Vec<_>>(),
        );
        check(
            &Guest32::ALL
                .iter()
                .map(|f| f.encoding())
                .collect::<Vec<_>>(),
        );
        check(
            &ControlNatural::ALL
                .iter()
                .map(|f| f.encoding())
                .collect::<Vec<_>>(),
        );
        check(
            &ReadOnlyNatural::ALL
                .iter()
                .map(|f| f.encoding())
                .collect::<Vec<_>>(),
        );
        check(
            &GuestNatural::ALL
                .iter()
                .map(|f| f.encoding())
                .collect::<Vec<_>>(),
        );
        check(
            &HostNatural::ALL
                .iter()
                .map(|f| f.encoding())
                .collect::<Vec<_>>(),
        );
    }

    #[test]
    fn rejects_malformed_encodings() {
        assert!(!is_valid_full_encoding(
            0x2001,
            Width::Bits64,
            FieldKind::Control
        ));
        assert!(!is_valid_full_encoding(
            0x1000,
            Width::Bits16,
            FieldKind::Control
        ));
        assert!(!is_valid_full_encoding(
            0x6800,
            Width::Bits64,
            FieldKind::Guest
        ));
        assert!(!is_valid_full_encoding(
            0x6800,
            Width::Natural,
            FieldKind::Host
        ));
        assert!(is_valid_full_encoding(
            0x6800,
            Width::Natural,
            FieldKind::Guest
        ));
    }
}
