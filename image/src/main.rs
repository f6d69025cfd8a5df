fn main() -> std::process::ExitCode {
    rescue_image::cli::run()
}
