fn main() -> std::process::ExitCode {
    mr::cli::main()
}
