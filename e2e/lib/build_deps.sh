# shellcheck shell=bash
# install_build_deps: what building the Rust workspace needs beyond a Rust toolchain, installed
# when missing: libclang, which librocksdb-sys's bindgen loads at build time to read RocksDB's C
# header, and clang++, which compiles RocksDB's C++ (.cargo/config.toml sets CXX=clang++: it
# compiles RocksDB a seventh faster than g++ at -O0, the longest part of a cold build). Sourced by
# e2e/test.sh and examples/main-job.sh.
install_build_deps() {
    local packages=()
    # libclang itself: libclang-cpp (which Debian's LLVM brings along) is another library.
    if ! compgen -G '/usr/lib/llvm-*/lib/libclang.so*' >/dev/null &&
        ! compgen -G '/usr/lib/llvm-*/lib/libclang-[0-9]*.so*' >/dev/null &&
        ! ldconfig -p 2>/dev/null | grep -qE 'libclang(-[0-9.]+)?\.so'; then
        packages+=(libclang-dev)
    fi
    # A CXX of the user's own choosing wins over the config's.
    if [ -z "${CXX:-}" ] && ! command -v clang++ >/dev/null 2>&1; then
        packages+=(clang)
    fi
    [ ${#packages[@]} -gt 0 ] || return 0
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "error: ${packages[*]} not found and this is not a Debian-like system: install libclang" \
            "and clang++ (macOS: they come with Xcode's command line tools), or set LIBCLANG_PATH" \
            "and CXX" >&2
        return 1
    fi
    echo "installing ${packages[*]} (RocksDB's bindings are generated with bindgen and its C++ compiled with clang++ at build time)" >&2
    local sudo=()
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${packages[@]}" >/dev/null
}
