//! The hypervisor console: a 16550 UART on COM1, shared by the `log` backend and the
//! fatal-error reporter.
//!
//! Lock order: the console lock is a leaf; nothing is acquired while holding it.
//! Fatal paths (exceptions, panics) may run while the lock is held by the very code
//! that faulted, so they use [`emergency_write`], which takes the lock if it can and
//! otherwise, after a bounded wait, breaks it: a garbled line is better than a
//! silent hang when the machine is going down.

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, Ordering};

use log::{LevelFilter, Metadata, Record};
use spin::Mutex;

/// I/O port base of the first PC serial port.
pub const COM1_PORT: u16 = 0x3f8;

type Uart = uart_16550::Uart16550Tty<uart_16550::backend::PioBackend>;

static CONSOLE: Mutex<Option<Uart>> = Mutex::new(None);
static LOGGER: SerialLogger = SerialLogger;
static LOGGER_INSTALLED: AtomicBool = AtomicBool::new(false);

/// Errors bringing the console up.
#[derive(Debug)]
pub enum ConsoleError {
    /// The UART at the given port did not initialise.
    Init(u16),
}

impl fmt::Display for ConsoleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Init(port) => write!(f, "16550 UART at port {port:#x} did not initialise"),
        }
    }
}

/// Initialises COM1 at 115200 8N1 and installs the serial logger at `level`.
///
/// The UART's loopback self-test is skipped on purpose: some boards and emulators do not
/// implement loopback, and a console that might work beats none. Calling this twice
/// re-initialises the UART and only changes the level.
pub fn init(level: LevelFilter) -> Result<(), ConsoleError> {
    // SAFETY: COM1_PORT..COM1_PORT+8 are the PC's first serial port; the hypervisor owns the
    // platform and nothing else drives these ports (guests never get them passed through).
    let mut uart = unsafe { uart_16550::Uart16550::new_port(COM1_PORT) }
        .map_err(|_| ConsoleError::Init(COM1_PORT))?;
    let config = uart_16550::Config {
        baud_rate: uart_16550::BaudRate::Baud115200,
        ..uart_16550::Config::DEFAULT
    };
    uart.init(config)
        .map_err(|_| ConsoleError::Init(COM1_PORT))?;
    *CONSOLE.lock() = Some(Uart::from_inner(uart));
    if !LOGGER_INSTALLED.swap(true, Ordering::AcqRel) {
        // Cannot fail: the flag above makes this the first and only call.
        let _ = log::set_logger(&LOGGER);
    }
    log::set_max_level(level);
    Ok(())
}

/// Changes the log level (the `loglvl=` option is only known after the command line is
/// parsed, after the console is already up).
pub fn set_level(level: LevelFilter) {
    log::set_max_level(level);
}

/// Writes formatted text to the console under its lock. Before [`init`] it is dropped.
pub fn write_fmt(args: fmt::Arguments<'_>) {
    if let Some(uart) = CONSOLE.lock().as_mut() {
        let _ = uart.write_fmt(args);
    }
}

/// Writes formatted text from a fatal path. Never waits forever: if the lock stays held
/// (the holder faulted, or another CPU is stuck), it is broken after a bounded spin.
pub fn emergency_write(args: fmt::Arguments<'_>) {
    const SPINS: u32 = 1 << 20;
    for _ in 0..SPINS {
        if let Some(mut guard) = CONSOLE.try_lock() {
            if let Some(uart) = guard.as_mut() {
                let _ = uart.write_fmt(args);
            }
            return;
        }
        core::hint::spin_loop();
    }
    // SAFETY: the machine is going down and the holder is not making progress (it faulted
    // mid-line or is wedged); interleaving with it is the accepted price of being heard.
    unsafe { CONSOLE.force_unlock() };
    if let Some(uart) = CONSOLE.lock().as_mut() {
        let _ = uart.write_fmt(args);
    }
}

/// `log` backend: one line per record, prefixed like Xen's `(XEN)` so the hypervisor's
/// lines stand out among guest console output.
struct SerialLogger;

impl log::Log for SerialLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let tag = match record.level() {
            log::Level::Error => "ERROR: ",
            log::Level::Warn => "WARN: ",
            log::Level::Info => "",
            log::Level::Debug => "debug: ",
            log::Level::Trace => "trace: ",
        };
        write_fmt(format_args!("(FV) {tag}{}\n", record.args()));
    }

    fn flush(&self) {}
}

/// `print!`-style macro onto the console, bypassing log levels (for reports that must be
/// seen whatever `loglvl=` says).
#[macro_export]
macro_rules! console_print {
    ($($arg:tt)*) => { $crate::console::write_fmt(format_args!($($arg)*)) };
}
