fn main() {
    std::process::exit(rescue_agent::cli::main());
}
