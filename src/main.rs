//! The `maasctl` binary: a thin shell over the library.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    maasctl::cli::main()
}
