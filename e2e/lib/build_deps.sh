# install_build_deps: what building the Rust workspace needs beyond a Rust toolchain and a C++
# compiler, installed when missing: libclang, which librocksdb-sys's bindgen loads at build time
# to read RocksDB's C header. Sourced by e2e/test.sh and examples/main-job.sh; defines `die` users
# may override.
install_build_deps() {
    # libclang itself: libclang-cpp (which Debian's LLVM brings along) is another library.
    if compgen -G '/usr/lib/llvm-*/lib/libclang.so*' >/dev/null ||
        compgen -G '/usr/lib/llvm-*/lib/libclang-[0-9]*.so*' >/dev/null ||
        ldconfig -p 2>/dev/null | grep -qE 'libclang(-[0-9.]+)?\.so'; then
        return
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "error: libclang not found and this is not a Debian-like system: install libclang" \
            "(macOS: it comes with Xcode's command line tools; or set LIBCLANG_PATH)" >&2
        return 1
    fi
    echo "installing libclang-dev (RocksDB's bindings are generated with bindgen at build time)" >&2
    local sudo=()
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq libclang-dev >/dev/null
}
