fn main() {
    // Unlocked handles: each write takes the lock briefly, so other threads (the Ctrl-C listener)
    // can print too.
    let exit = kling_batch::app::main_with(std::env::args_os(), &mut std::io::stdout(), &mut std::io::stderr());
    std::process::exit(i32::from(exit.code()));
}
