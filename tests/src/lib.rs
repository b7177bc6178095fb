//! Emulator test catalogue.
