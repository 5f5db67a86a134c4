//! Standard output for commands: a closed pipe (`kai audit tail | head`) ends the program
//! quietly instead of panicking.

use std::io::Write as _;

/// Writes one line to stdout.
pub fn line(args: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    if let Err(e) =
        out.write_fmt(args).and_then(|()| out.write_all(b"\n")).and_then(|()| out.flush())
        && e.kind() == std::io::ErrorKind::BrokenPipe
    {
        std::process::exit(0);
    }
}

/// `println!` that survives a closed pipe.
macro_rules! outln {
    ($($t:tt)*) => { $crate::output::line(format_args!($($t)*)) };
}
pub(crate) use outln;
