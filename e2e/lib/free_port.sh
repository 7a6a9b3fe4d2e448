# free_port: a port nothing listens on at 127.0.0.1; the server that takes it fails loudly if
# another process takes it first. Sourced by the e2e scripts, which define `die`.
free_port() {
    local port
    for _ in $(seq 1 100); do
        # Below Linux's ephemeral range (32768 and up), where outgoing connections take ports.
        port=$((10000 + RANDOM % 22000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return
        fi
    done
    die "no free port found on 127.0.0.1"
}
