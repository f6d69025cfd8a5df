fn main() {
    if rescue_agent::init::is_init() {
        // PID 1 in the rescue initramfs: never returns, never exits.
        rescue_agent::init::boot(rescue_agent::unattended::run);
    }
    std::process::exit(rescue_agent::cli::main());
}
