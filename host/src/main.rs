/// mimalloc rather than glibc malloc: every event allocates (records, headers, audit entries)
/// on several threads at once, where glibc spent ~40% of the delivery threads' CPU (S2, perf).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    agenthost::cli::main()
}
